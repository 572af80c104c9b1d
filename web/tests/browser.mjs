// The pages in a real browser: Debian's Chromium driven by playwright-core against a running
// PoP (and its origin). tests/tests/browser.rs starts both in-process and runs this script;
// it runs just as well against `make run`.
//
//   node web/tests/browser.mjs --base https://127.0.0.1:8443 --spki <base64 sha256 SPKI>
//       --clip clip.mp4 [--h3-port 8443] [--creator-token dev-creator-token]
//       [--screenshots DIR] [--pending-video ID --expired-token TOKEN]
//       [--chromium /usr/bin/chromium] [--ready-timeout 150]
//
// `--pending-video` is a video whose bytes never arrive and `--expired-token` a playback token
// for it that has expired (the script cannot sign one); without them that test is skipped.
// Every wait is bounded, browsers are always closed, and the last line is `N passed, N failed`
// (exit status 1 on any failure).

import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'

import { assert, describePage as describePlayer, harness, parseArgs } from './harness.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const TITLE = '서울의 밤 · 브라우저 시험 🎬'
const DESCRIPTION = 'Korean title, Arabic description: وصف الفيديو بالعربية\nand a second line.'
const TOTAL_LIMIT_MS = 280_000

// ---- options -----------------------------------------------------------------------------

const args = parseArgs(process.argv.slice(2))
const env = process.env
const opt = {
  base: (args.base ?? env.BROWSER_BASE_URL ?? '').replace(/\/$/, ''),
  h3Port: args['h3-port'] ?? env.BROWSER_H3_PORT,
  spki: args.spki ?? env.BROWSER_SPKI,
  clip: args.clip ?? env.BROWSER_CLIP,
  creatorToken: args['creator-token'] ?? env.CREATOR_TOKEN ?? 'dev-creator-token',
  screenshots: args.screenshots ?? env.BROWSER_SCREENSHOTS ?? 'browser-screenshots',
  pendingVideo: args['pending-video'],
  expiredToken: args['expired-token'],
  chromium: args.chromium ?? env.CHROMIUM ?? '/usr/bin/chromium',
  readyTimeout: Number(args['ready-timeout'] ?? 150) * 1000,
}
if (!opt.base || !opt.spki || !opt.clip) {
  console.error('usage: node browser.mjs --base URL --spki SPKI --clip FILE [options]; see the top of this file')
  process.exit(2)
}
const { test, blocked, until, launch, newContext, shot, run } = harness({
  screenshots: opt.screenshots,
  chromium: opt.chromium,
  spki: opt.spki,
  totalLimitMs: TOTAL_LIMIT_MS,
})

/**
 * Every response a page gets: URL, path, status, headers, time, and (via the DevTools
 * protocol) the protocol it came over: h3, h2 or http/1.1.
 */
async function record(page) {
  const log = []
  const protocols = new Map()
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('Network.enable')
  cdp.on('Network.responseReceived', (e) => protocols.set(e.response.url, e.response.protocol))
  page.on('response', (response) => {
    const url = new URL(response.url())
    log.push({
      url: response.url(),
      origin: url.origin,
      path: url.pathname,
      status: response.status(),
      headers: response.headers(),
      method: response.request().method(),
      requestHeaders: response.request().headers(),
      at: Date.now(),
      response,
    })
  })
  log.protocolOf = (url) => protocols.get(url)
  return log
}

const isSegment = (r) => /\/seg_\d+\.m4s$/.test(r.path)
/** Key service requests of a video: the AES-128 key and ClearKey licences (not preflights). */
const keyRequests = (log, id) =>
  log.filter((r) => r.method !== 'OPTIONS' && (r.path === `/v1/keys/${id}` || r.path === `/v1/keys/${id}/licence`))
const CACHE_RESULTS = ['hit-memory', 'hit-disk', 'miss', 'stale']

// ---- the tests ---------------------------------------------------------------------------

/**
 * Plays /watch/{id} on `page` past 2 s and checks the network said what it should: media from
 * the edge, keys never through it but from the key service, with the key token. `engine` is
 * what should play: 'shaka' (DASH, CENC cbcs, ClearKey licence) by default in Chromium, or
 * 'hls.js' (AES-128 HLS) when the page is asked for it.
 */
async function playsThroughTheEdge(page, log, base, id, engine = 'shaka') {
  await page.goto(`${base}/watch/${id}${engine === 'hls.js' ? '?engine=hls' : ''}`)
  await until(
    page,
    'playback past 2 s',
    () => {
      const v = document.querySelector('video')
      return v && v.currentTime > 2 && !v.paused && v.readyState >= 2
    },
    null,
    30_000,
  )
  const state = await page.evaluate(describePlayer)
  assert(state.engine === engine, `${engine} plays in Chromium, not ${state.engine}`)
  assert(state.notice === null && state.error === null, `no fatal player error: ${JSON.stringify(state)}`)
  const keys = keyRequests(log, id)
  if (engine === 'shaka') {
    assert(keys.length >= 1 && keys.every((k) => k.path.endsWith('/licence')), `ClearKey licences: ${keys.map((k) => k.path)}`)
  } else {
    assert(keys.length === 1 && keys[0].method === 'GET', `the AES-128 key is fetched exactly once, not ${keys.length} times`)
  }
  for (const k of keys) {
    assert(k.status === 200, `the key service answered ${k.status}`)
    assert(k.origin !== base, `keys come from the key service, not the edge: ${k.origin}`)
    assert(/^Bearer v2\./.test(k.requestHeaders.authorization ?? ''), 'with the key token as a bearer token')
    assert(k.headers['cache-control'] === 'no-store, private', `never stored: ${k.headers['cache-control']}`)
  }
  const throughEdge = log.filter((r) => r.origin === base && /\/key$|\/v1\/keys\//.test(r.path))
  assert(throughEdge.length === 0, `nothing key-like through the edge: ${throughEdge.map((r) => r.path)}`)
  const tree = engine === 'shaka' ? '/cbcs/' : null
  // A segment still being encoded on demand may be answered `503 origin_busy` with
  // Retry-After; the player asks again (after the Retry-After, so a 503 just before this
  // check is given time; at another quality if it switched meanwhile). Every other answer
  // is the segment.
  const busy = log.filter((r) => isSegment(r) && r.status === 503)
  for (const b of busy) {
    assert(b.headers['retry-after'], `a 503 for ${b.path} says when to retry`)
    // The same segment of the same video and tree, at any video quality (or audio for audio).
    const parts = b.path.split('/')
    const [rendition, name] = parts.slice(-2)
    const base = parts.slice(0, -2).join('/')
    const isAudio = (r) => r === 'audio'
    const came = () =>
      log.some((r) => {
        const p = r.path.split('/')
        return (
          p.length === parts.length &&
          r.path.startsWith(`${base}/`) &&
          p.at(-1) === name &&
          isAudio(p.at(-2)) === isAudio(rendition) &&
          r.at >= b.at &&
          [200, 206].includes(r.status)
        )
      })
    const deadline = Date.now() + 20_000
    while (!came() && Date.now() < deadline) await page.waitForTimeout(250)
    assert(came(), `${name} came on a retry after the 503 of ${b.path}`)
  }
  const segments = log.filter((r) => isSegment(r) && r.status !== 503)
  assert(segments.length >= 2, `segments were fetched (${segments.length})`)
  for (const s of segments) {
    assert([200, 206].includes(s.status), `segment ${s.path}: HTTP ${s.status}`)
    assert(tree ? s.path.includes(tree) : !s.path.includes('/cbcs/'), `segment ${s.path} from the ${engine} tree`)
    assert(s.origin === base, `segment from the edge, not ${s.origin}`)
    assert(CACHE_RESULTS.includes(s.headers['x-cache']), `segment ${s.path} has x-cache: ${s.headers['x-cache']}`)
  }
  const title = await page.textContent('#title')
  assert(title === TITLE, `the Korean title renders as given: ${title}`)
  return { keys, segments }
}

async function main() {
  const base = opt.base
  const browser = await launch()
  const context = await newContext(browser)
  let videoId = null

  // 1. Upload through /upload.
  const uploadPage = await context.newPage()
  const uploads = []
  uploadPage.on('request', (request) => {
    if (new URL(request.url()).pathname.startsWith('/v1/uploads')) {
      const concat = request.headers()['upload-concat']
      uploads.push(concat ? `${request.method()} ${concat.split(';')[0]}` : request.method())
    }
  })
  await test(
    'upload page: a 20 s 1080p clip goes up with tus, 4 parallel parts, progress and speed',
    async () => {
      await uploadPage.goto(`${base}/upload`)
      await uploadPage.waitForSelector('#file', { state: 'attached' })
      const token = await uploadPage.inputValue('#creator-token')
      assert(token === 'dev-creator-token', `the development creator token is prefilled: ${token}`)
      await uploadPage.fill('#creator-token', opt.creatorToken)
      await uploadPage.setInputFiles('#file', opt.clip)
      await uploadPage.fill('#title', TITLE)
      await uploadPage.fill('#description', DESCRIPTION)
      await uploadPage.click('#start')
      await uploadPage.waitForSelector('#state-panel:not([hidden])', { timeout: 60_000 })
      videoId = await uploadPage.getAttribute('#state-panel', 'data-video')
      assert(/^[0-9a-f]+$/.test(videoId ?? ''), `a video id: ${videoId}`)
      const count = (what) => uploads.filter((u) => u === what).length
      assert(count('POST partial') === 4, `4 partial uploads: ${uploads.join(', ')}`)
      assert(count('POST final') === 1, `1 final (concatenation) upload: ${uploads.join(', ')}`)
      assert(uploads.filter((u) => u.startsWith('PATCH')).length >= 4, `the parts' bytes went in PATCHes: ${uploads.join(', ')}`)
      const percent = await uploadPage.textContent('#upload-percent')
      const speed = await uploadPage.textContent('#upload-speed')
      assert(percent.trim() === '100%', `progress reached 100%: ${percent}`)
      assert(/MB\/s/.test(speed), `the speed was shown: ${speed}`)
      // Watch the state panel's transitions from here on.
      await uploadPage.evaluate(() => {
        const panel = document.querySelector('#state-panel')
        window.seenStates = [panel.dataset.state]
        new MutationObserver(() => {
          if (window.seenStates.at(-1) !== panel.dataset.state) window.seenStates.push(panel.dataset.state)
        }).observe(panel, { attributes: true, attributeFilter: ['data-state'] })
      })
    },
    { timeout: 90_000, page: uploadPage },
  )

  // While it transcodes: the watch page says so, live, and starts by itself once it is ready.
  let waitingPage = null
  if (videoId) {
    waitingPage = await context.newPage()
    await test(
      'watch page while processing: a not-ready page with live state, not a player',
      async () => {
        await waitingPage.goto(`${base}/watch/${videoId}`)
        await waitingPage.waitForSelector('#notice[data-notice="not_ready"]', { timeout: 15_000 })
        const state = await waitingPage.getAttribute('#notice', 'data-state')
        assert(['queued', 'processing', 'uploading'].includes(state), `a live state: ${state}`)
        assert(await waitingPage.isHidden('#player'), 'no player while not ready')
        assert(await waitingPage.isVisible('#notice progress'), 'a progress bar')
        await shot(waitingPage, 'watch-not-ready.png')
      },
      { page: waitingPage },
    )
  } else {
    blocked('watch page while processing', 'no video was uploaded')
  }

  // The pages a viewer meets instead of a player, checked while the clip transcodes.
  await failurePages(browser, base)

  await test(
    'upload page: processing progress from the events stream, then ready with a watch link',
    async () => {
      assert(videoId, 'no video was uploaded')
      await uploadPage.waitForSelector('#state-panel[data-state="ready"]', { timeout: opt.readyTimeout })
      const seen = await uploadPage.evaluate(() => window.seenStates)
      assert(seen.includes('processing'), `processing was shown on the way: ${seen.join(' → ')}`)
      const href = await uploadPage.getAttribute('#watch-link', 'href')
      assert(href === `/watch/${videoId}`, `a link to the watch page: ${href}`)
      assert(await uploadPage.isVisible('#watch-link'), 'the watch link is shown')
      await shot(uploadPage, 'upload-ready.png')
    },
    { timeout: opt.readyTimeout + 10_000, page: uploadPage },
  )
  await uploadPage.close()

  if (waitingPage) {
    await test(
      'watch page while processing: starts playing by itself once ready',
      async () => {
        await until(
          waitingPage,
          'playback on the page that waited',
          () => {
            const v = document.querySelector('video')
            return document.querySelector('#notice').hidden && v && v.currentTime > 1 && !v.paused
          },
          null,
          30_000,
        )
      },
      { page: waitingPage },
    )
    await waitingPage.close()
  }

  if (!videoId) {
    for (const name of ['watch over HTTP/2', 'quality menu', 'keyboard', 'catalogue', 'watch over HTTP/3']) {
      blocked(name, 'no video was uploaded')
    }
    return
  }

  // 2, 3. Watch over HTTP/1.1-2, then switch quality from the menu.
  const page = await context.newPage()
  const log = await record(page)
  const consoleErrors = []
  page.on('pageerror', (err) => consoleErrors.push(err.message))
  const played = await test(
    'watch page (HTTP/2): DASH cbcs plays with shaka, licences from the key service (never the edge), segments with x-cache',
    async () => {
      await playsThroughTheEdge(page, log, base, videoId)
      assert(consoleErrors.length === 0, `no script errors: ${consoleErrors.join('; ')}`)
      await shot(page, 'watch-h2.png')
    },
    { page },
  )

  await test(
    'watch page: keyboard and remote keys seek, pause and play',
    async () => {
      assert(played, 'playback did not start')
      await page.focus('#player')
      const t0 = await page.evaluate(() => document.querySelector('video').currentTime)
      await page.keyboard.press('ArrowRight')
      await until(page, 'ArrowRight seeks 10 s', (from) => document.querySelector('video').currentTime >= from + 8, t0, 8000)
      await page.keyboard.press('Home')
      await until(page, 'Home goes back to the start', () => document.querySelector('video').currentTime < 3, null, 8000)
      await page.keyboard.press('k')
      await until(page, 'k pauses', () => document.querySelector('video').paused, null, 3000)
      await page.keyboard.press('Enter')
      await until(page, 'Enter (a remote OK) plays', () => !document.querySelector('video').paused, null, 3000)
    },
    { page },
  )

  await test(
    'quality menu: another height is fetched from its rendition and decoded (encoded on demand), then the stored floor again',
    async () => {
      assert(played, 'playback did not start')
      const before = await page.evaluate(() => document.querySelector('video').videoHeight)
      await page.hover('#player')
      await page.click('#quality-button')
      await page.waitForSelector('#quality-menu:not([hidden])')
      const heights = await page.$$eval('#quality-menu [role="menuitemradio"]', (items) =>
        items.map((i) => Number(i.dataset.height)).filter(Boolean),
      )
      assert(heights.length >= 3, `the menu lists the ladder's heights: ${heights}`)
      assert(
        (await page.textContent('#quality-menu [role="menuitemradio"]')).trim().startsWith('Auto'),
        'Auto comes first',
      )
      // Only the floor was encoded at upload. A small rung other than the current one and the
      // floor: cheap to decode, clearly different, and encoded when its segments are asked for.
      const video = await page.evaluate(async (id) => (await fetch(`/v1/videos/${id}`)).json(), videoId)
      const states = video.renditions.filter((r) => r.height > 0).map((r) => `${r.name}:${r.state}`)
      const floor = video.renditions.find((r) => r.state === 'floor')
      assert(floor && heights.includes(floor.height), `a stored floor rung in the menu: ${states}`)
      const onDemand = video.renditions.filter((r) => r.state === 'on_demand').map((r) => r.height)
      const target = heights.filter((h) => h !== before && onDemand.includes(h)).sort((a, b) => a - b)[0]
      assert(target, `a rung not encoded yet besides the current ${before}p: ${states}`)
      const licencesBefore = keyRequests(log, videoId).length
      const switchedAt = Date.now()
      await page.click(`#quality-menu [role="menuitemradio"][data-height="${target}"]`)
      try {
        await until(page, `the decoded height becomes ${target}`, (h) => document.querySelector('video').videoHeight === h, target, 25_000)
      } catch (err) {
        const since = log.filter((r) => r.at >= switchedAt).map((r) => `${r.method} ${r.path} ${r.status} ${r.headers['x-cache'] ?? ''}`)
        throw new Error(`${err.message}; requests since the pick: ${since.join(' | ')}`)
      }
      const fetched = log.filter((r) => r.at >= switchedAt && isSegment(r) && r.path.includes(`/${target}p/`))
      assert(fetched.length > 0, `segments of ${target}p were fetched after the pick`)
      const label = await page.textContent('#quality-label')
      assert(label.trim() === `${target}p`, `the button says ${target}p: ${label}`)
      const t1 = await page.evaluate(() => document.querySelector('video').currentTime)
      await until(page, 'playback goes on after the switch', (t) => document.querySelector('video').currentTime > t + 0.5, t1, 8000)
      const state = await page.evaluate(describePlayer)
      assert(state.notice === null && state.error === null, `no fatal error after the switch: ${JSON.stringify(state)}`)
      const licences = keyRequests(log, videoId)
      assert(licences.length === licencesBefore, `no new licence for the same key after the switch: ${licences.length}`)
      await shot(page, 'watch-quality.png')

      // Back to the floor: stored segments follow just-in-time ones.
      await page.hover('#player')
      await page.click('#quality-button')
      await page.waitForSelector('#quality-menu:not([hidden])')
      await page.click(`#quality-menu [role="menuitemradio"][data-height="${floor.height}"]`)
      await until(page, `the decoded height returns to ${floor.height}`, (h) => document.querySelector('video').videoHeight === h, floor.height, 25_000)
      const t2 = await page.evaluate(() => document.querySelector('video').currentTime)
      await until(page, 'playback goes on after the way back', (t) => document.querySelector('video').currentTime > t + 0.5, t2, 8000)
      const back = await page.evaluate(describePlayer)
      assert(back.notice === null && back.error === null, `no fatal error after the way back: ${JSON.stringify(back)}`)
    },
    { page },
  )
  await page.close()

  await test(
    'AES-128 HLS with hls.js (?engine=hls): plays, the key once from the key service with the key token',
    async () => {
      const hlsPage = await context.newPage()
      try {
        const hlsLog = await record(hlsPage)
        await playsThroughTheEdge(hlsPage, hlsLog, base, videoId, 'hls.js')
        await shot(hlsPage, 'watch-hls-aes128.png')
      } finally {
        await hlsPage.close()
      }
    },
  )

  await test(
    'decryption is real: a licence with a wrong key makes DASH cbcs fail to decode',
    async () => {
      const wrongPage = await context.newPage()
      try {
        await wrongPage.route(/\/v1\/keys\/[^/]+\/licence$/, async (route) => {
          const answer = await route.fetch()
          const body = await answer.json()
          for (const k of body.keys) k.k = 'AAAAAAAAAAAAAAAAAAAAAA' // sixteen zero bytes
          await route.fulfill({ response: answer, json: body })
        })
        await wrongPage.goto(`${base}/watch/${videoId}`)
        await until(
          wrongPage,
          'the player gives up (or never gets past the first frames)',
          () => {
            const v = document.querySelector('video')
            const notice = document.querySelector('#notice')
            return (notice && !notice.hidden) || v?.error
          },
          null,
          30_000,
        )
        const state = await wrongPage.evaluate(describePlayer)
        assert(!(state.currentTime > 2), `nothing played with the wrong key: ${JSON.stringify(state)}`)
        await shot(wrongPage, 'watch-wrong-key.png')
      } finally {
        await wrongPage.close()
      }
    },
  )

  await test(
    'catalogue: search finds the video by its Korean title, with its poster and state',
    async () => {
      const catalogue = await context.newPage()
      try {
        await catalogue.goto(`${base}/`)
        await catalogue.fill('#search', '서울의')
        await until(
          catalogue,
          'one matching card',
          (title) => {
            const cards = [...document.querySelectorAll('#videos .card')]
            return cards.length === 1 && cards[0].querySelector('.card-title').textContent === title
          },
          TITLE,
          10_000,
        )
        assert(new URL(catalogue.url()).searchParams.get('q') === '서울의', `the query is in the address: ${catalogue.url()}`)
        const state = await catalogue.getAttribute('#videos .card', 'data-state')
        assert(state === 'ready', `the card says ready: ${state}`)
        await until(
          catalogue,
          'the poster thumbnail',
          () => document.querySelector('#videos .card img')?.naturalWidth > 0,
          null,
          15_000,
        )
        await catalogue.fill('#search', 'no such title 없음')
        await until(catalogue, 'no cards for a query matching nothing', () => !document.querySelector('#videos .card'), null, 10_000)
        await catalogue.fill('#search', '')
        await until(catalogue, 'the full list again', () => document.querySelectorAll('#videos .card').length >= 1, null, 10_000)
        await shot(catalogue, 'catalogue.png')
      } finally {
        await catalogue.close()
      }
    },
  )

  // 4. The same playback over HTTP/3: QUIC forced to the PoP's UDP port, its certificate pinned.
  if (opt.h3Port) {
    const host = new URL(base).hostname
    const h3Base = `https://${host}:${opt.h3Port}`
    let h3Page = null
    await test(
      'watch page over HTTP/3 (forced QUIC, SPKI pin): plays, every segment over h3, licences from the key service',
      async () => {
        const quic = await launch([`--origin-to-force-quic-on=${host}:${opt.h3Port}`])
        const h3Context = await newContext(quic)
        h3Page = await h3Context.newPage()
        const h3Log = await record(h3Page)
        const { keys, segments } = await playsThroughTheEdge(h3Page, h3Log, h3Base, videoId)
        const documentProtocol = h3Log.protocolOf(`${h3Base}/watch/${videoId}`)
        assert(documentProtocol === 'h3', `the page came over h3, not ${documentProtocol}`)
        assert(keys.length >= 1, 'the licence came from the key service')
        for (const r of segments) {
          const protocol = h3Log.protocolOf(r.url)
          assert(protocol === 'h3', `${r.path} came over ${protocol}, not h3`)
        }
        const timing = await h3Page.evaluate(() =>
          performance
            .getEntriesByType('resource')
            .filter((e) => /\/seg_\d+\.m4s$/.test(e.name))
            .map((e) => e.nextHopProtocol),
        )
        // A request the player aborted (shaka cancels what a switch makes useless) has no protocol.
        const known = timing.filter(Boolean)
        assert(known.length > 0 && known.every((p) => p === 'h3'), `resource timing says h3: ${timing}`)
        await shot(h3Page, 'watch-h3.png')
      },
      { page: () => h3Page },
    )
  } else {
    blocked('watch page over HTTP/3', 'no --h3-port given')
  }

  await resumeAfterReload(browser, base)
}

/** The pages for an expired token, a missing video, a browser that cannot play, and the languages. */
async function failurePages(browser, base) {
  const context = await newContext(browser)
  try {
    if (opt.pendingVideo && opt.expiredToken) {
      const page = await context.newPage()
      const log = await record(page)
      await test(
        'expired token: the token-expired page from the PoP’s 403, not a spinner',
        async () => {
          await page.goto(`${base}/watch/${opt.pendingVideo}?token=${encodeURIComponent(opt.expiredToken)}`)
          await page.waitForSelector('#notice[data-notice="token_expired"]', { timeout: 15_000 })
          const master = log.find((r) => r.path.endsWith('/manifest.mpd') || r.path.endsWith('/master.m3u8'))
          assert(master, 'the manifest was asked for')
          assert(master.status === 403, `the PoP refused it: ${master.status}`)
          const body = await master.response.json()
          assert(body?.error?.code === 'token_expired', `with code token_expired: ${JSON.stringify(body)}`)
          assert(await page.isHidden('#spinner'), 'no spinner')
          assert(await page.isHidden('#player'), 'no player')
          assert(await page.isVisible('#notice [data-action="renew"]'), 'a button to get a new link')
          assert(!page.url().includes('token='), `the token left the address bar: ${page.url()}`)
          await shot(page, 'token-expired.png')
        },
        { page },
      )
      await page.close()
    } else {
      console.log('skip expired token: no --pending-video and --expired-token given')
    }

    const page = await context.newPage()
    await test(
      'unknown video: the not-found page',
      async () => {
        await page.goto(`${base}/watch/0123456789abcdef01234567`)
        await page.waitForSelector('#notice[data-notice="not_found"]', { timeout: 10_000 })
        assert(await page.isHidden('#spinner'), 'no spinner')
      },
      { page },
    )

    await test(
      'browser without MSE or native HLS: the unsupported-browser page',
      async () => {
        const old = await context.newPage()
        try {
          await old.addInitScript(() => {
            for (const name of ['MediaSource', 'ManagedMediaSource', 'WebKitMediaSource']) {
              Object.defineProperty(window, name, { value: undefined, configurable: true })
            }
            HTMLMediaElement.prototype.canPlayType = () => ''
          })
          await old.goto(`${base}/watch/0123456789abcdef01234567`)
          await old.waitForSelector('#notice[data-notice="unsupported"]', { timeout: 10_000 })
          await shot(old, 'unsupported.png')
        } finally {
          await old.close()
        }
      },
    )

    await test(
      'languages: the same keys in en, ko and ar; Arabic is right-to-left; switching is live',
      async () => {
        const strings = Object.fromEntries(
          ['en', 'ko', 'ar'].map((l) => [l, JSON.parse(readFileSync(join(HERE, '..', 'i18n', `${l}.json`), 'utf8'))]),
        )
        const keys = (o, p = '') =>
          Object.entries(o).flatMap(([k, v]) =>
            v && typeof v === 'object' && !('other' in v) ? keys(v, `${p}${k}.`) : [`${p}${k}`],
          )
        const en = new Set(keys(strings.en))
        for (const l of ['ko', 'ar']) {
          const other = new Set(keys(strings[l]))
          const missing = [...en].filter((k) => !other.has(k))
          const extra = [...other].filter((k) => !en.has(k))
          assert(!missing.length && !extra.length, `${l}.json: missing ${missing}, extra ${extra}`)
        }
        await page.goto(`${base}/?lang=ar`)
        await until(page, 'Arabic strings', (h) => document.querySelector('h1').textContent === h, strings.ar.catalogue.heading, 10_000)
        const html = await page.evaluate(() => [document.documentElement.lang, document.documentElement.dir])
        assert(html[0] === 'ar' && html[1] === 'rtl', `<html lang=ar dir=rtl>: ${html}`)
        await shot(page, 'catalogue-ar.png')
        await page.selectOption('select[data-language-picker]', 'ko')
        await until(page, 'Korean strings after picking 한국어', (h) => document.querySelector('h1').textContent === h, strings.ko.catalogue.heading, 10_000)
        const after = await page.evaluate(() => [document.documentElement.lang, document.documentElement.dir])
        assert(after[0] === 'ko' && after[1] === 'ltr', `<html lang=ko dir=ltr>: ${after}`)
        await page.goto(`${base}/upload`)
        await until(page, 'the choice is remembered', (h) => document.querySelector('h1').textContent === h, strings.ko.upload.heading, 10_000)
      },
      { page },
    )
    await page.close()
  } finally {
    await context.close()
  }
}

/**
 * An upload interrupted by a page reload continues after it, from the parts' offsets: a
 * file of random bytes sent slowly (network throttling), the page reloaded part way, the same
 * file chosen again. The origin then refuses the bytes as not media: the failure shows with its code.
 */
async function resumeAfterReload(browser, base) {
  const file = join(tmpdir(), `resume-${process.pid}.mp4`)
  writeFileSync(file, randomBytes(12 * 1024 * 1024))
  const context = await newContext(browser)
  const page = await context.newPage()
  page.on('dialog', (dialog) => dialog.accept())
  try {
    await test(
      'upload page: an upload continues after a reload, and a refused file shows its error code',
      async () => {
        const cdp = await context.newCDPSession(page)
        await cdp.send('Network.enable')
        // About 3 MB/s up: a 12 MB file takes four seconds, enough to reload in the middle.
        await cdp.send('Network.emulateNetworkConditions', {
          offline: false,
          latency: 0,
          downloadThroughput: -1,
          uploadThroughput: 3 * 1024 * 1024,
        })
        await page.goto(`${base}/upload`)
        await page.setInputFiles('#file', file)
        await page.fill('#title', 'Resumed after a reload')
        await page.click('#start')
        await until(
          page,
          'a third of the upload',
          () => Number(document.querySelector('#upload-progress')?.value) > 0.3,
          null,
          20_000,
        )
        await page.reload()
        const posts = []
        page.on('request', (r) => {
          if (r.method() === 'POST' && r.url().includes('/v1/uploads')) posts.push(r.headers()['upload-concat'] ?? 'single')
        })
        await page.waitForSelector('#pending:not([hidden])', { timeout: 10_000 })
        await page.setInputFiles('#file', file)
        await page.waitForSelector('#resume-note:not([hidden])', { timeout: 5000 })
        await cdp.send('Network.emulateNetworkConditions', {
          offline: false,
          latency: 0,
          downloadThroughput: -1,
          uploadThroughput: -1,
        })
        await page.click('#start')
        await page.waitForSelector('#state-panel:not([hidden])', { timeout: 30_000 })
        assert(!posts.some((p) => p.startsWith('partial')), `no part started over: ${posts}`)
        assert(posts.filter((p) => p.startsWith('final')).length === 1, `one final upload: ${posts}`)
        await page.waitForSelector('#state-panel[data-state="failed"]', { timeout: 60_000 })
        const text = await page.textContent('#state-text')
        // Random bytes are refused as not media, or (when some of them happen to look like MPEG
        // audio frames to the probe) as a file without a video stream: either way with its code.
        assert(/not_media|corrupt_media|no_video_stream/.test(text), `the failure says why: ${text}`)
      },
      { timeout: 120_000, page },
    )
  } finally {
    await context.close()
    rmSync(file, { force: true })
  }
}

// ---- run ---------------------------------------------------------------------------------

await run(main)
