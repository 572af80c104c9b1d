// A PoP dies under a player: Debian's Chromium plays /watch/{id} from one PoP, the test kills
// that PoP, and the player must go on from another one that content steering names, with at
// most one short stall and no fatal error. tests/tests/network.rs runs this script inside a
// viewer's network namespace and kills the PoP when told to.
//
//   node web/tests/failover.mjs --watch https://10.77.0.3:8443/watch/ID [--engine hls|shaka]
//       [--spki SPKI,SPKI] [--rate 2] [--chromium /usr/bin/chromium] [--limit 120]
//
// Protocol on stdio: the script prints `PLAYING` once playback is past 1 s, then waits for a
// line `KILLED` on stdin; at the end it prints `RESULT {json}` and exits 0 (or 1 on a failure
// to play at all). The JSON says what happened after the kill: stalls (ms each), the hosts
// media came from, whether a fatal error showed, how far playback got.

import { createInterface } from 'node:readline'

import { chromium } from 'playwright-core'

function parseArgs(argv) {
  const out = {}
  for (let i = 0; i < argv.length; i++) {
    const [name, inline] = argv[i].slice(2).split(/=(.*)/s)
    out[name] = inline ?? argv[++i]
  }
  return out
}

const args = parseArgs(process.argv.slice(2))
const watch = args.watch
const engine = args.engine ?? 'hls'
const rate = Number(args.rate ?? 2)
const limitMs = Number(args.limit ?? 120) * 1000
if (!watch) {
  console.error('usage: node failover.mjs --watch URL [--engine hls|shaka] [--rate 2]')
  process.exit(2)
}

const lines = createInterface({ input: process.stdin })
const killed = new Promise((resolve) => lines.on('line', (l) => l.trim() === 'KILLED' && resolve()))

const browser = await chromium.launch({
  executablePath: args.chromium ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-background-networking',
    '--autoplay-policy=no-user-gesture-required',
    // The PoPs' development certificates, trusted by their keys (any address, a secure context).
    ...(args.spki ? [`--ignore-certificate-errors-spki-list=${args.spki}`] : []),
  ],
  timeout: 30_000,
})
const deadline = setTimeout(async () => {
  console.log(`RESULT ${JSON.stringify({ error: 'time limit' })}`)
  await browser.close()
  process.exit(1)
}, limitMs)

// Media requests by time and host, counted from the kill on.
const media = []
let killedAt = null
const isMedia = (url) => /\.(m4s|mp4|m3u8|mpd)(\?|$)/.test(url) || url.includes('/v1/steering/')
function record(request, failed) {
  if (killedAt === null || !isMedia(request.url())) return
  media.push({ host: new URL(request.url()).host, path: new URL(request.url()).pathname.split('/').slice(-2).join('/'), failed })
}

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 }, locale: 'en-US' })
  const page = await context.newPage()
  page.on('requestfinished', (r) => record(r, false))
  page.on('requestfailed', (r) => record(r, true))
  page.on('console', (m) => m.type() === 'error' && !m.text().startsWith('Failed to load') && console.error(`[page] ${m.text()}`))
  // What hls.js decided on every error, and which steering it got, go to stderr: the story of
  // a failover (or of a failure to fail over).
  await page.addInitScript(() => {
    let wrapped
    Object.defineProperty(window, 'Hls', {
      configurable: true,
      get: () => wrapped,
      set: (Hls) => {
        wrapped = class extends Hls {
          constructor(config) {
            super(config)
            const E = Hls.Events
            this.on(E.ERROR, (_, d) => {
              const url = d.url ?? d.frag?.url ?? d.context?.url ?? ''
              const action = d.errorAction ? `${d.errorAction.action}/${d.errorAction.flags}/${d.errorAction.resolved}` : '-'
              console.error(`hls error ${d.details} fatal=${d.fatal} action=${action} ${url}`)
            })
            this.on(E.STEERING_MANIFEST_LOADED, (_, d) => console.error(`steering ${JSON.stringify(d.steeringManifest['PATHWAY-PRIORITY'])}`))
            this.on(E.LEVELS_UPDATED, () => console.error(`pathway ${this.levels[0]?.pathwayId} ${this.levels[0]?.uri?.split('/')[2]}`))
          }
        }
      },
    })
  })
  await page.addInitScript(() => {
    let held
    Object.defineProperty(window, 'shaka', {
      configurable: true,
      get: () => held,
      set: (shaka) => {
        const Player = shaka.Player
        shaka.Player = class extends Player {
          constructor(...a) {
            super(...a)
            this.addEventListener('error', (e) => console.error(`shaka error ${e.detail?.code} ${JSON.stringify(e.detail?.data)?.slice(0, 300)}`))
          }
        }
        held = shaka
      },
    })
  })
  const url = new URL(watch)
  url.searchParams.set('engine', engine)
  await page.goto(url.href)
  await page.waitForFunction(() => {
    const v = document.querySelector('video')
    return v && v.currentTime > 1 && !v.paused && v.readyState >= 2
  }, null, { timeout: limitMs / 2, polling: 100 })
  // Stalls are what the viewer sees: `waiting` until `playing` again.
  await page.evaluate((r) => {
    const v = document.querySelector('video')
    v.playbackRate = r
    window.__stalls = []
    let since = null
    v.addEventListener('waiting', () => (since ??= performance.now()))
    v.addEventListener('playing', () => {
      if (since !== null && window.__killedAt !== undefined && since >= window.__killedAt) {
        window.__stalls.push(performance.now() - since)
      }
      since = null
    })
    window.__open = () => (since === null ? null : performance.now() - since)
  }, rate)
  console.log('PLAYING')
  await killed
  killedAt = Date.now()
  await page.evaluate(() => (window.__killedAt = performance.now()))
  const startedAt = await page.evaluate(() => document.querySelector('video').currentTime)
  await page.waitForFunction(() => {
    const v = document.querySelector('video')
    return v.ended || v.currentTime >= v.duration - 1.5 || document.querySelector('#notice:not([hidden])')
  }, null, { timeout: limitMs - 10_000, polling: 250 })
  const state = await page.evaluate(() => {
    const v = document.querySelector('video')
    const notice = document.querySelector('#notice')
    return {
      currentTime: v.currentTime,
      duration: v.duration,
      stalls: window.__stalls,
      open: window.__open(),
      notice: notice && !notice.hidden ? notice.dataset.notice ?? notice.textContent : null,
      engine: document.querySelector('#player')?.dataset.engine ?? null,
    }
  })
  const hosts = [...new Set(media.filter((m) => !m.failed).map((m) => m.host))]
  const failedHosts = [...new Set(media.filter((m) => m.failed).map((m) => m.host))]
  console.log(`RESULT ${JSON.stringify({ ...state, startedAt, hosts, failedHosts, requests: media.length })}`)
  clearTimeout(deadline)
  await browser.close()
  process.exit(0)
} catch (e) {
  console.error(`media after the kill: ${JSON.stringify(media)}`)
  console.log(`RESULT ${JSON.stringify({ error: String(e?.message ?? e) })}`)
  clearTimeout(deadline)
  await browser.close()
  process.exit(1)
}
