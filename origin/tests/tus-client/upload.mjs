// Uploads a file with tus-js-client, used exactly as an application would, to show that an
// off-the-shelf tus client works against the origin. Driven by origin/tests/tus_js_client.rs.
//
//   node upload.mjs <pre-signed creation URL> <file> <whole|resume|parallel>
//
// Prints one JSON line: {"ok":true,"url":...,...} and exits 0, or {"ok":false,"error":...}
// and exits 1.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'

import { FileUrlStorage, Upload } from 'tus-js-client'

// Small against a ~100 KB clip so that every mode takes several PATCH requests.
const CHUNK_SIZE = 16 * 1024

const [endpoint, file, mode] = process.argv.slice(2)

function finish(code, result) {
  // Exit only once the line is written: stdout may be a pipe.
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(code))
}

// Counts requests by method (and concatenation role), so the test can see what went over the wire.
function requestLog() {
  const counts = {}
  return {
    counts,
    onBeforeRequest(req) {
      const concat = req.getHeader('Upload-Concat')
      const key = concat ? `${req.getMethod()} ${concat.split(';')[0]}` : req.getMethod()
      counts[key] = (counts[key] ?? 0) + 1
    },
  }
}

function options(storage, log, extra) {
  return {
    endpoint,
    chunkSize: CHUNK_SIZE,
    retryDelays: [0, 200, 500],
    metadata: { filename: basename(file), filetype: 'video/mp4' },
    urlStorage: storage,
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: true,
    onBeforeRequest: (req) => log.onBeforeRequest(req),
    ...extra,
  }
}

// Runs one Upload to completion; resolves with it (its `url` is the upload's URL).
function run(data, opts, prepare = async () => {}) {
  return new Promise((resolve, reject) => {
    const upload = new Upload(data, { ...opts, onSuccess: () => resolve(upload), onError: reject })
    prepare(upload).then(() => upload.start(), reject)
  })
}

async function whole(data, storage) {
  const log = requestLog()
  const upload = await run(data, options(storage, log, {}))
  return { url: upload.url, requests: log.counts }
}

async function parallel(data, storage) {
  const log = requestLog()
  const upload = await run(data, options(storage, log, { parallelUploads: 4 }))
  return { url: upload.url, requests: log.counts }
}

// First run: abort once about half of the bytes are on their way, possibly in the middle of
// a PATCH body. Second run: a new Upload finds the first one in the URL storage (as after a
// restart) and resumes it from the offset the server acknowledges.
async function resume(data, storage) {
  const firstLog = requestLog()
  let patchOffset = null
  const first = await new Promise((resolve, reject) => {
    let upload
    let stopped = false
    const opts = options(storage, firstLog, {
      onBeforeRequest: (req) => {
        firstLog.onBeforeRequest(req)
        patchOffset = req.getMethod() === 'PATCH' ? Number(req.getHeader('Upload-Offset')) : null
      },
      onAfterResponse: () => {
        patchOffset = null
      },
      onProgress: (sent, total) => {
        if (stopped || sent < total / 2) return
        stopped = true
        const midRequest = patchOffset !== null && sent > patchOffset
        upload.abort().then(() => resolve({ abortedAt: sent, midRequest }), reject)
      },
      onSuccess: () => reject(new Error('the first run finished before it could be aborted')),
      onError: reject,
    })
    upload = new Upload(data, opts)
    upload.start()
  })

  const secondLog = requestLog()
  let resumedFrom = null
  let sent = 0
  let previous = []
  const second = await run(
    data,
    options(storage, secondLog, {
      onAfterResponse: (req, res) => {
        if (req.getMethod() === 'HEAD' && resumedFrom === null) {
          resumedFrom = Number(res.getHeader('Upload-Offset'))
        }
      },
      onChunkComplete: (chunk) => {
        sent += chunk
      },
    }),
    async (upload) => {
      previous = await upload.findPreviousUploads()
      if (previous.length !== 1) throw new Error(`expected 1 previous upload, found ${previous.length}`)
      upload.resumeFromPreviousUpload(previous[0])
    },
  )
  return {
    url: second.url,
    first_url: previous[0].uploadUrl,
    aborted_at: first.abortedAt,
    aborted_mid_request: first.midRequest,
    resumed_from: resumedFrom,
    second_run_bytes: sent,
    requests: { first: firstLog.counts, second: secondLog.counts },
  }
}

const modes = { whole, resume, parallel }

async function main() {
  if (!endpoint || !file || !modes[mode]) {
    return [2, { ok: false, error: 'usage: node upload.mjs <endpoint-url> <file> <whole|resume|parallel>' }]
  }
  const dir = mkdtempSync(join(tmpdir(), 'tus-client-'))
  // tus-js-client updates the URL storage after onSuccess without waiting, so the storage
  // goes only when the process does.
  process.on('exit', () => {
    try {
      rmSync(dir, { recursive: true, force: true })
    } catch {}
  })
  try {
    const data = readFileSync(file)
    const result = await modes[mode](data, new FileUrlStorage(join(dir, 'uploads.json')))
    return [0, { ok: true, mode, size: data.length, ...result }]
  } catch (err) {
    return [1, { ok: false, mode, error: String(err?.stack ?? err) }]
  }
}

// A server that stops answering must fail the test, not hang it.
setTimeout(() => finish(1, { ok: false, mode, error: 'timed out after 90 s' }), 90_000).unref()
main().then(([code, result]) => finish(code, result))
