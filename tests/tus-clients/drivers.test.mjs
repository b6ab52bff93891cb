// The client drivers (tusjs.mjs, tuspy_client.py) against the reference server (@tus/server + file store), and the
// client behaviours a tus server has to live with, pinned against a small scripted stub: what each client sends,
// what it retries, and when it gives up an upload and creates a new one.
//
//   eval "$(scripts/tus-clients-setup)" && (cd tests/tus-clients && node --test drivers.test.mjs)
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'

const HERE = dirname(fileURLToPath(import.meta.url))
const REPO = resolve(HERE, '../..')
const TARGET = resolve(REPO, process.env.CARGO_TARGET_DIR ?? 'target')
const PYTHON = process.env.TUS_PYTHON ?? join(TARGET, 'tus-venv/bin/python')
const TMP = mkdtempSync(join(tmpdir(), 'holdfast-tus-clients-'))
const SIZE = 10_000_000
const DATA = randomBytes(SIZE)
const SHA = createHash('sha256').update(DATA).digest('hex')
const FILE = join(TMP, 'upload.bin')
writeFileSync(FILE, DATA)
after(() => rmSync(TMP, { recursive: true, force: true }))

// Runs a command to its end (30 s at most) and returns its exit code and its one JSON line.
function run(cmd, args) {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], timeout: 30_000, killSignal: 'SIGKILL' })
    let out = ''
    child.stdout.on('data', (b) => {
      out += b
    })
    child.on('error', fail)
    child.on('close', (code) => {
      try {
        done({ code, ...JSON.parse(out) })
      } catch {
        fail(new Error(`${cmd} ${args.join(' ')}: exit ${code}, no JSON line: ${out}`))
      }
    })
  })
}
const tusjs = (...args) => run(process.execPath, [join(HERE, 'tusjs.mjs'), '--file', FILE, ...args])
const tuspy = (...args) => run(PYTHON, [join(HERE, 'tuspy_client.py'), '--file', FILE, ...args])
const head = (url) => fetch(url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } })

function assertDelivered(result) {
  assert.equal(result.code, 0, JSON.stringify(result))
  assert.equal(result.status, 200)
  assert.equal(Number(result.headers['upload-offset']), SIZE)
  assert.deepEqual(JSON.parse(result.body).sha256, SHA)
}

describe('against @tus/server (reference-server.mjs --hash)', () => {
  let server
  let endpoint
  before(async () => {
    server = spawn(process.execPath, [join(HERE, 'reference-server.mjs'), '--dir', join(TMP, 'store'), '--hash'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const port = await new Promise((done, fail) => {
      server.stdout.once('data', (b) => done(/^listening (\d+)/.exec(String(b))?.[1]))
      server.once('exit', (code) => fail(new Error(`reference server exited with ${code}`)))
    })
    endpoint = `http://127.0.0.1:${port}/files`
  })
  after(() => server?.kill('SIGTERM'))

  test('tusjs_uploads_a_file_in_one_patch', async () => assertDelivered(await tusjs('--endpoint', endpoint)))

  test('tusjs_uploads_in_chunks_from_a_buffer_with_metadata', async () => {
    const r = await tusjs('--endpoint', endpoint, '--chunk-size', '3000000', '--source', 'buffer', '--metadata', 'filename=a b.bin')
    assertDelivered(r)
  })

  test('tusjs_stops_then_resumes_from_the_acknowledged_offset', async () => {
    const stopped = await tusjs('--endpoint', endpoint, '--chunk-size', '3000000', '--stop-after', '5000000')
    assert.deepEqual([stopped.code, stopped.stopped, stopped.offset], [0, true, 6_000_000])
    assert.equal((await head(stopped.url)).headers.get('upload-offset'), '6000000')
    assertDelivered(await tusjs('--upload-url', stopped.url, '--chunk-size', '3000000'))
  })

  test('tusjs_cut_mid_patch_resumes_from_what_the_server_kept', async () => {
    const stopped = await tusjs('--endpoint', endpoint, '--abort-after', '4000000')
    assert.equal(stopped.stopped, true, JSON.stringify(stopped))
    assert.ok(stopped.serverOffset > 0 && stopped.serverOffset <= 4_000_000, JSON.stringify(stopped))
    assertDelivered(await tusjs('--upload-url', stopped.url))
  })

  test('tusjs_defers_the_length_and_sends_it_with_the_last_bytes', async () => {
    for (const source of ['buffer', 'stream']) {
      assertDelivered(await tusjs('--endpoint', endpoint, '--defer-length', '--chunk-size', '3000000', '--source', source))
    }
  })

  test('tusjs_sends_data_with_the_creation_post', async () => {
    assertDelivered(await tusjs('--endpoint', endpoint, '--upload-during-creation', '--chunk-size', '4000000'))
  })

  test('tusjs_terminates_a_stopped_upload', async () => {
    const r = await tusjs('--endpoint', endpoint, '--chunk-size', '3000000', '--stop-after', '1', '--terminate')
    assert.equal(r.terminated, true)
    assert.equal((await head(r.url)).status, 404)
  })

  test('tuspy_uploads_a_file_in_one_patch', async () => {
    assertDelivered(await tuspy('--endpoint', endpoint, '--metadata', 'filename=a.bin'))
  })

  test('tuspy_stops_then_resumes_in_chunks_with_checksums', async () => {
    const stopped = await tuspy('--endpoint', endpoint, '--metadata', 'filename=a.bin', '--chunk-size', '3000000', '--stop-after', '5000000')
    assert.deepEqual([stopped.code, stopped.stopped, stopped.offset], [0, true, 5_000_000])
    assertDelivered(await tuspy('--upload-url', stopped.url, '--chunk-size', '3000000', '--checksum'))
  })

  // What the reference does not do, pinned so that a new release that starts doing it is noticed.
  test('reference_refuses_the_empty_upload_metadata_tuspy_sends_without_metadata', async () => {
    const r = await tuspy('--endpoint', endpoint)
    assert.deepEqual([r.code, r.status, r.body], [1, 400, 'Invalid upload-metadata\n'])
  })

  test('reference_ignores_upload_checksum', async () => {
    assertDelivered(await tuspy('--endpoint', endpoint, '--metadata', 'filename=a.bin', '--bad-checksum'))
  })
})

// A tus server scripted per test: `script(method, req, body, ctx)` answers [status, headers, body], 'drop' (close the
// connection without an answer), or nothing for the default tus answer. `ctx.offset` is the offset before this
// request and `ctx.store()` keeps the body (what the default PATCH answer does). Every request is recorded as
// "METHOD offset length checksum" (the checksum's algorithm, with "-mismatch" when it does not match the body).
function stub(script) {
  const log = []
  let offset = 0
  const server = createServer((req, res) => {
    const chunks = []
    req.on('data', (b) => chunks.push(b))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      const [algo, digest] = (req.headers['upload-checksum'] ?? '').split(' ')
      const sum = algo ? (createHash(algo).update(body).digest('base64') === digest ? algo : `${algo}-mismatch`) : '-'
      log.push(`${req.method} ${req.headers['upload-offset'] ?? '-'} ${body.length} ${sum}`)
      if (req.method === 'POST') offset = 0
      const ctx = { offset, store: () => (offset += body.length) }
      const answer = script(req.method, req, body, ctx) ?? defaults(req.method, ctx)
      if (answer === 'drop') return req.socket.destroy()
      const [status, headers, text] = answer
      res.writeHead(status, { 'Tus-Resumable': '1.0.0', ...headers }).end(text ?? '')
    })
  })
  function defaults(method, ctx) {
    if (method === 'POST') return [201, { Location: '/files/1?holdfast-upload=1' }]
    if (method === 'HEAD') return [200, { 'Upload-Offset': String(offset), 'Upload-Length': String(SIZE) }]
    if (method === 'PATCH') return [204, { 'Upload-Offset': String(ctx.store()) }]
    return [405, {}]
  }
  return new Promise((done) => {
    server.listen(0, '127.0.0.1', () =>
      done({ url: `http://127.0.0.1:${server.address().port}/upload`, log, close: () => server.close() }),
    )
  })
}
// The PATCH that completes the upload: its bytes are kept, its answer is lost (a reset before the response).
const loseFinalAnswerOnce = () => {
  let lost = false
  return (method, _req, body, ctx) => {
    if (method !== 'PATCH' || lost || ctx.offset + body.length !== SIZE) return undefined
    lost = true
    ctx.store()
    return 'drop'
  }
}

describe('client behaviours (scripted stub server)', () => {
  test('both_clients_follow_a_location_with_a_query_and_tuspy_sends_an_empty_metadata_header', async () => {
    const posts = []
    const patched = []
    const s = await stub((method, req) => {
      if (method === 'POST') posts.push(req.headers['upload-metadata'])
      if (method === 'PATCH') patched.push(req.url)
    })
    assert.equal((await tuspy('--endpoint', s.url)).status, 204)
    assert.equal((await tusjs('--endpoint', s.url)).status, 204)
    assert.deepEqual(patched, ['/files/1?holdfast-upload=1', '/files/1?holdfast-upload=1'])
    // tuspy always sends the header, empty without metadata; tus-js-client leaves it out.
    assert.deepEqual(posts, ['', undefined])
    s.close()
  })

  test('tuspy_checksums_are_right_and_bad_checksum_is_wrong', async () => {
    const s = await stub((method) => {
      if (method === 'PATCH' && s.log.at(-1).endsWith('mismatch')) return [460, {}, 'checksum mismatch']
    })
    await tuspy('--endpoint', s.url, '--chunk-size', '4000000', '--checksum', '--stop-after', '4000000')
    await tuspy('--endpoint', s.url, '--chunk-size', '4000000', '--checksum', '--checksum-algorithm', 'sha256', '--stop-after', '8000000')
    const bad = await tuspy('--endpoint', s.url, '--chunk-size', '4000000', '--bad-checksum', '--checksum-algorithm', 'md5')
    assert.deepEqual(s.log.filter((l) => l.startsWith('PATCH')), [
      'PATCH 0 4000000 sha1',
      'PATCH 0 4000000 sha256',
      'PATCH 4000000 4000000 sha256',
      'PATCH 0 4000000 md5-mismatch',
    ])
    assert.deepEqual([bad.code, bad.status, bad.body], [1, 460, 'checksum mismatch'])
    s.close()
  })

  test('tuspy_retrying_a_lost_final_answer_sends_an_empty_patch_at_the_final_offset', async () => {
    const s = await stub(loseFinalAnswerOnce())
    const r = await tuspy('--endpoint', s.url, '--chunk-size', '4000000', '--retries', '1', '--retry-delay', '0')
    assert.deepEqual(s.log.slice(-3), ['PATCH 8000000 2000000 -', 'HEAD - 0 -', 'PATCH 10000000 0 -'])
    // What tuspy reports is the answer to that empty PATCH.
    assert.deepEqual([r.code, r.status, r.offset], [0, 204, SIZE])
    s.close()
  })

  test('tusjs_treats_a_head_answer_other_than_2xx_or_423_as_gone_and_starts_a_new_upload', async () => {
    for (const status of [404, 502, 503]) {
      let posts = 0
      const s = await stub((method) => {
        if (method === 'POST') posts++
        if (method === 'PATCH') return 'drop'
        if (method === 'HEAD') return [status, {}]
      })
      await tusjs('--endpoint', s.url, '--retry-delays', '0')
      assert.equal(posts, 2, `HEAD ${status}: ${s.log.join(', ')}`)
      s.close()
    }
    let posts = 0
    const s = await stub((method) => {
      if (method === 'POST') posts++
      if (method === 'PATCH') return 'drop'
      if (method === 'HEAD') return [423, {}]
    })
    await tusjs('--endpoint', s.url, '--retry-delays', '0,0')
    assert.equal(posts, 1, `HEAD 423: ${s.log.join(', ')}`)
    s.close()
  })

  test('tusjs_after_a_lost_final_answer_takes_a_complete_head_as_success_without_the_body', async () => {
    const s = await stub(loseFinalAnswerOnce())
    const r = await tusjs('--endpoint', s.url, '--chunk-size', '4000000', '--retry-delays', '0')
    assert.deepEqual([r.code, r.status, r.body], [0, 200, ''])
    assert.deepEqual(s.log.map((l) => l.split(' ')[0]), ['POST', 'PATCH', 'PATCH', 'PATCH', 'HEAD'])
    s.close()
  })

  test('tusjs_retries_a_final_5xx_and_then_takes_a_complete_head_as_success_but_reports_a_final_4xx', async () => {
    for (const [status, code] of [
      [500, 0],
      [502, 0],
      [422, 1],
    ]) {
      let failed = false
      const s = await stub((method, _req, _body, ctx) => {
        if (method !== 'PATCH' || failed) return undefined
        failed = true
        return [status, { 'Upload-Offset': String(ctx.store()) }, 'backend said no']
      })
      const r = await tusjs('--endpoint', s.url, '--retry-delays', '0')
      assert.equal(r.code, code, `${status}: ${JSON.stringify(r)}`)
      if (code) assert.deepEqual([r.status, r.body], [status, 'backend said no'])
      s.close()
    }
  })

  test('tusjs_needs_upload_offset_on_the_final_answer', async () => {
    const s = await stub((method) => {
      if (method === 'PATCH') return [200, { 'Content-Type': 'application/json' }, '{"ok":true}']
    })
    const r = await tusjs('--endpoint', s.url, '--retry-delays', 'none')
    assert.deepEqual([r.code, r.error.split(',')[0]], [1, 'tus: invalid or missing offset value'])
    s.close()
  })
})
