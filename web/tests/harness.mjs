// What the browser scripts share: options from the command line, a tiny test runner (each
// test bounded in time, a failure saved as a screenshot and counted), Debian's Chromium
// launched through playwright-core with the PoP's certificate pinned by its SPKI, and a run
// that always closes its browsers and ends with the line `N passed, N failed`.

import { mkdirSync } from 'node:fs'
import { join } from 'node:path'

import { chromium } from 'playwright-core'

/** `--name value` and `--name=value` pairs. */
export function parseArgs(argv) {
  const out = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}`)
    const [name, inline] = arg.slice(2).split(/=(.*)/s)
    out[name] = inline ?? argv[++i]
  }
  return out
}

export function assert(cond, message) {
  if (!cond) throw new Error(message)
}

export function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`
}

/** What a page shows, for failure messages (runs in the page). */
export function describePage() {
  const v = document.querySelector('video')
  const notice = document.querySelector('#notice')
  return {
    url: location.pathname,
    notice: notice && !notice.hidden ? notice.dataset.notice : null,
    currentTime: v?.currentTime,
    paused: v?.paused,
    videoHeight: v?.videoHeight,
    error: v?.error?.code ?? null,
    engine: document.querySelector('#player')?.dataset.engine,
  }
}

/**
 * A runner for one script: `screenshots` is where pictures go, `chromium` the browser to
 * drive, `spki` the PoP certificate's pin, `totalLimitMs` the whole run's bound.
 */
export function harness({ screenshots, chromium: executablePath, spki, totalLimitMs }) {
  mkdirSync(screenshots, { recursive: true })
  const results = { passed: 0, failed: 0 }
  const browsers = new Set()

  /** Runs one test with a time limit; a failure is reported, saved as a screenshot, and counted. */
  async function test(name, fn, { timeout = 60_000, page = null } = {}) {
    const started = Date.now()
    let timer
    try {
      await Promise.race([
        fn(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${seconds(timeout)}`)), timeout)
        }),
      ])
      results.passed += 1
      console.log(`ok   ${name} (${seconds(Date.now() - started)})`)
      return true
    } catch (err) {
      results.failed += 1
      console.log(`FAIL ${name} (${seconds(Date.now() - started)}): ${err?.message ?? err}`)
      const target = typeof page === 'function' ? page() : page
      if (target && !target.isClosed()) {
        const file = join(screenshots, `failed-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.png`)
        await target.screenshot({ path: file, timeout: 5000 }).catch(() => {})
      }
      return false
    } finally {
      clearTimeout(timer)
    }
  }

  /** Skips (and fails) a test whose prerequisite failed, saying so. */
  function blocked(name, why) {
    results.failed += 1
    console.log(`FAIL ${name}: not run, ${why}`)
  }

  /** page.waitForFunction with a message that says what was awaited. */
  async function until(page, what, fn, arg, timeout = 20_000) {
    try {
      await page.waitForFunction(fn, arg, { timeout, polling: 100 })
    } catch (err) {
      const state = await page.evaluate(describePage).catch(() => ({}))
      throw new Error(`${what} within ${seconds(timeout)} (page: ${JSON.stringify(state)}): ${err.message.split('\n')[0]}`)
    }
  }

  const flags = [
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--ignore-certificate-errors-spki-list=${spki}`,
  ]

  async function launch(extra = []) {
    const browser = await chromium.launch({ executablePath, headless: true, args: [...flags, ...extra], timeout: 30_000 })
    browsers.add(browser)
    return browser
  }

  async function newContext(browser, options = {}) {
    const context = await browser.newContext({
      ignoreHTTPSErrors: true,
      viewport: { width: 1280, height: 720 },
      locale: 'en-US',
      ...options,
    })
    context.setDefaultTimeout(20_000)
    context.setDefaultNavigationTimeout(30_000)
    return context
  }

  async function closeAll() {
    await Promise.all([...browsers].map((b) => b.close().catch(() => {})))
    browsers.clear()
  }

  async function shot(page, name) {
    await page.screenshot({ path: join(screenshots, name), timeout: 10_000 })
  }

  /** Runs `main`, then closes every browser and prints the summary; exit status 1 on a failure. */
  async function run(main) {
    let finished = false
    const finish = async (code) => {
      if (finished) return
      finished = true
      await closeAll()
      console.log(`${results.passed} passed, ${results.failed} failed`)
      console.log(`screenshots: ${screenshots}`)
      process.exitCode = code ?? (results.failed ? 1 : 0)
    }
    for (const signal of ['SIGINT', 'SIGTERM']) {
      process.on(signal, () => {
        console.log(`stopped by ${signal}`)
        results.failed += 1
        finish(1).then(() => process.exit(1))
      })
    }
    setTimeout(() => {
      console.log(`the whole run took longer than ${seconds(totalLimitMs)}`)
      results.failed += 1
      finish(1).then(() => process.exit(1))
    }, totalLimitMs).unref()
    try {
      await main()
    } catch (err) {
      results.failed += 1
      console.log(`FAIL the run stopped: ${err?.stack ?? err}`)
    } finally {
      await finish()
    }
  }

  return { results, test, blocked, until, launch, newContext, closeAll, shot, run }
}
