#!/usr/bin/env node
// The reference tus 1.0.0 server that Holdfast's resumable uploads are compared with: @tus/server with its file
// store (tus/tus-node-server), as its README sets it up, on 127.0.0.1.
//
//   node reference-server.mjs --port 0 --dir /tmp/uploads [--path /files] [--hash] [--relative-location]
//
// Prints `listening PORT` on stdout once it accepts connections (PORT is the bound one when --port 0); exits on
// SIGTERM or SIGINT after closing its listener. Uploads land in --dir as `<id>` (data) and `<id>.json` (info).
//
// --hash: when the last byte of an upload is stored, read the file back, hash it and answer the final PATCH with
// 200 and JSON {"bytes":N,"sha256":"…","id":"…"}, as Holdfast answers it with the backend's response (the backend
// being holdfast-hash-upstream, which reads and hashes the body). Without it the final PATCH is tus's plain 204.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { parseArgs } from 'node:util'
import { FileStore } from '@tus/file-store'
import { Server } from '@tus/server'

function fail(message) {
  console.log(JSON.stringify({ error: message }))
  process.exit(2)
}

let args
try {
  ;({ values: args } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      dir: { type: 'string' },
      path: { type: 'string', default: '/files' },
      hash: { type: 'boolean', default: false },
      'relative-location': { type: 'boolean', default: false },
    },
    strict: true,
  }))
} catch (err) {
  fail(err.message)
}
if (!args.dir) fail('--dir DIR is required')

function sha256OfFile(path) {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256')
    let bytes = 0
    createReadStream(path, { highWaterMark: 1 << 20 })
      .on('data', (chunk) => {
        bytes += chunk.length
        hash.update(chunk)
      })
      .on('error', reject)
      .on('end', () => resolve({ bytes, sha256: hash.digest('hex') }))
  })
}

const server = new Server({
  path: args.path,
  datastore: new FileStore({ directory: args.dir }),
  relativeLocation: args['relative-location'],
  async onUploadFinish(_req, upload) {
    if (!args.hash) return {}
    const { bytes, sha256 } = await sha256OfFile(upload.storage.path)
    return {
      status_code: 200,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ bytes, sha256, id: upload.id }),
    }
  },
})

const listener = server.listen({ host: args.host, port: Number(args.port) }, () => {
  console.log(`listening ${listener.address().port}`)
})
listener.on('error', (err) => fail(`listen: ${err.message}`))
// A connection may be idle between two PATCHes; close those too so that exit does not wait for a client.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    listener.close(() => process.exit(0))
    listener.closeAllConnections()
  })
}
