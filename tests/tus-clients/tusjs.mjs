#!/usr/bin/env node
// One tus upload with tus-js-client (the npm package, its Node build), for tests and benchmarks. Prints ONE JSON
// line on stdout when it ends; see README.md for every option.
//
//   node tusjs.mjs --endpoint http://127.0.0.1:8080/upload --file big.bin --chunk-size 67108864
//   -> {"url":"…","status":200,"body":"{\"bytes\":…}","headers":{"upload-offset":"…",…},"offset":…,"ms":…}
//
// A stopped upload prints {"url","offset","stopped":true}; an error prints {"error",…} (with the failing response's
// status, body and headers when there was one) and exits with 1; bad arguments exit with 2.
import { createReadStream, readFileSync } from 'node:fs'
import { PassThrough, Readable, Transform } from 'node:stream'
import { parseArgs } from 'node:util'
import { DefaultHttpStack, Upload } from 'tus-js-client'

const started = Date.now()
let printed = false
function print(object, code) {
  if (printed) return
  printed = true
  process.stdout.write(`${JSON.stringify({ ...object, ms: Date.now() - started })}\n`, () => process.exit(code))
}
// tus-js-client can leave nothing pending and let Node exit without a callback (a deferred-length stream whose size is
// a multiple of --chunk-size: it waits for data from a stream that has ended). Say so rather than exit silently;
// writes to a pipe or file are synchronous here, so this line is not lost.
process.on('exit', (code) => {
  if (printed) return
  process.stdout.write(`${JSON.stringify({ error: 'tus-js-client stopped without success or error', ms: Date.now() - started })}\n`)
  process.exitCode = code || 1
})
function usage(message) {
  print({ error: `usage: ${message}` }, 2)
}

// "k=v" pairs (repeatable options) into an object; the value may contain "=".
function pairs(list, name) {
  const out = {}
  for (const item of list ?? []) {
    const eq = item.indexOf('=')
    if (eq <= 0) throw new Error(`--${name} takes key=value, got ${JSON.stringify(item)}`)
    out[item.slice(0, eq)] = item.slice(eq + 1)
  }
  return out
}

function count(value, name) {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} takes a byte count, got ${JSON.stringify(value)}`)
  return n
}

// "0,500,1000" (milliseconds between attempts), or "none": no retry at all (tus-js-client's retryDelays: null).
function delays(value) {
  if (value === undefined) return undefined
  if (value === 'none' || value === '') return null
  return value.split(',').map((d) => count(d.trim(), 'retry-delays'))
}

function parse() {
  const { values } = parseArgs({
    options: {
      endpoint: { type: 'string' },
      file: { type: 'string' },
      'chunk-size': { type: 'string' },
      metadata: { type: 'string', multiple: true },
      header: { type: 'string', multiple: true },
      'upload-url': { type: 'string' },
      'stop-after': { type: 'string' },
      'abort-after': { type: 'string' },
      terminate: { type: 'boolean', default: false },
      'retry-delays': { type: 'string' },
      'defer-length': { type: 'boolean', default: false },
      'upload-during-creation': { type: 'boolean', default: false },
      'override-patch-method': { type: 'boolean', default: false },
      source: { type: 'string', default: 'file' },
      protocol: { type: 'string', default: 'tus-v1' },
    },
    strict: true,
  })
  if (!values.file) throw new Error('--file PATH is required')
  if (!values.endpoint && !values['upload-url']) throw new Error('--endpoint URL or --upload-url URL is required')
  if (!['file', 'buffer', 'stream'].includes(values.source)) throw new Error('--source is file, buffer or stream')
  if (!['tus-v1', 'ietf-draft-03', 'ietf-draft-05'].includes(values.protocol)) {
    throw new Error('--protocol is tus-v1, ietf-draft-03 or ietf-draft-05')
  }
  // tus-js-client 4.3.1's FileSource never says "done" before the chunk that covers the whole file, so with a
  // deferred length it never sends Upload-Length and its last PATCH declares more bytes than it sends: a hang.
  if (values['defer-length'] && values.source === 'file' && values['chunk-size'] !== undefined) {
    throw new Error('--defer-length with --chunk-size needs --source buffer or stream (tus-js-client 4.3.1 hangs on a file)')
  }
  if (values.terminate && values['stop-after'] === undefined && values['abort-after'] === undefined) {
    throw new Error('--terminate goes with --stop-after or --abort-after')
  }
  return {
    ...values,
    chunkSize: count(values['chunk-size'], 'chunk-size'),
    stopAfter: count(values['stop-after'], 'stop-after'),
    abortAfter: count(values['abort-after'], 'abort-after'),
    retryDelays: delays(values['retry-delays']),
    metadata: pairs(values.metadata, 'metadata'),
    headers: pairs(values.header, 'header'),
  }
}

// What tus-js-client reads the file through: an fs.ReadStream is its FileSource (a new read stream per chunk, the
// size from stat), a Buffer its BufferSource, any other Readable its StreamSource (no size: needs --chunk-size, and
// --defer-length unless the size is known).
function input(opts) {
  if (opts.source === 'buffer') return readFileSync(opts.file)
  if (opts.source === 'stream') return createReadStream(opts.file).pipe(new PassThrough())
  return createReadStream(opts.file)
}

// --abort-after: tus-js-client's own progress events come at most every 100 ms, too late on loopback, so the body of
// each request is counted as it is handed to the socket instead, and the upload aborted (the connection closed in
// the middle of the request) once the upload's position (the request's Upload-Offset plus the bytes sent in it)
// reaches the limit. The server has then received at most that many bytes.
class CuttingHttpStack extends DefaultHttpStack {
  constructor(limit, cut) {
    super()
    this.limit = limit
    this.cut = cut
  }

  createRequest(method, url) {
    const req = super.createRequest(method, url)
    const send = req.send.bind(req)
    req.send = (body) => send(body == null ? body : this.counted(body, Number(req.getHeader('Upload-Offset') ?? 0)))
    return req
  }

  counted(body, start) {
    const { limit, cut } = this
    const source = Buffer.isBuffer(body) ? Readable.from(chunks(body)) : body
    let position = start
    const counter = new Transform({
      transform(chunk, _encoding, callback) {
        if (position >= limit) return callback()
        const part = chunk.subarray(0, limit - position)
        position += part.length
        callback(null, part)
        if (position >= limit) setImmediate(cut)
      },
    })
    counter.size = body.size
    return source.pipe(counter)
  }
}

function* chunks(buffer) {
  for (let at = 0; at < buffer.length; at += 1 << 20) yield buffer.subarray(at, at + (1 << 20))
}

function responseOf(res) {
  if (!res) return {}
  const node = res.getUnderlyingObject()
  return { status: res.getStatus(), body: res.getBody(), headers: node?.headers ?? {} }
}

// The server's idea of the offset after an abort, from a HEAD (423 while the server still holds the aborted PATCH's
// lock is retried, a bounded number of times).
async function serverOffset(url, headers) {
  for (let attempt = 0; attempt < 20; attempt++) {
    const res = await fetch(url, { method: 'HEAD', headers: { ...headers, 'Tus-Resumable': '1.0.0' } })
    if (res.status !== 423) return { headStatus: res.status, serverOffset: Number(res.headers.get('upload-offset')) }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return { headStatus: 423 }
}

function run(opts) {
  let upload
  let stopping = false
  const stop = async (offset) => {
    if (stopping) return
    stopping = true
    await upload.abort(opts.terminate)
    const out = { url: upload.url, offset, stopped: true }
    if (opts.terminate) out.terminated = true
    // Cut during a creation POST with data, there is no URL to ask.
    else if (opts.abortAfter !== undefined && upload.url) Object.assign(out, await serverOffset(upload.url, opts.headers))
    print(out, 0)
  }
  const options = {
    endpoint: opts.endpoint,
    uploadUrl: opts['upload-url'],
    metadata: opts.metadata,
    headers: opts.headers,
    uploadLengthDeferred: opts['defer-length'],
    uploadDataDuringCreation: opts['upload-during-creation'],
    overridePatchMethod: opts['override-patch-method'],
    // tus 1.0.0, or the IETF draft at interop version 5 (ietf-draft-03) or 6 (ietf-draft-05).
    protocol: opts.protocol,
    // A CLI run resumes only what --upload-url names; tus-js-client's Node URL storage is a no-op anyway.
    storeFingerprintForResuming: false,
    onChunkComplete(_chunk, accepted, total) {
      if (opts.stopAfter !== undefined && accepted >= opts.stopAfter && accepted !== total) {
        stop(accepted).catch((err) => print({ error: String(err), url: upload.url }, 1))
      }
    },
    onSuccess({ lastResponse }) {
      const res = responseOf(lastResponse)
      print({ url: upload.url, ...res, offset: Number(res.headers['upload-offset']) }, 0)
    },
    onError(err) {
      print({ error: err.message, url: upload.url, ...responseOf(err.originalResponse) }, 1)
    },
  }
  if (opts.abortAfter !== undefined) {
    options.httpStack = new CuttingHttpStack(opts.abortAfter, () => {
      stop(null).catch((err) => print({ error: String(err), url: upload.url }, 1))
    })
  }
  if (opts.chunkSize !== undefined) options.chunkSize = opts.chunkSize
  if (opts.retryDelays !== undefined) options.retryDelays = opts.retryDelays
  upload = new Upload(input(opts), options)
  upload.start()
}

let opts
try {
  opts = parse()
} catch (err) {
  usage(err.message)
}
if (opts) run(opts)
