// People on the platform, in a real browser: Debian's Chromium driven by playwright-core
// against a running PoP (and its origin). tests/tests/browser.rs starts both in-process and
// runs this script; it runs just as well against `make run` (with its bootstrap token).
//
//   node web/tests/accounts.mjs --base https://127.0.0.1:8443 --spki <base64 sha256 SPKI>
//       --clip clip.mp4 [--creator-token dev-creator-token] [--locales en,ko,ar]
//       [--day-quota one-clip] [--screenshots DIR] [--chromium /usr/bin/chromium]
//       [--ready-timeout 120]
//
// For each language, three people in three browser contexts whose browsers speak it:
//   A signs up on /account and uploads the clip from /upload under the session (no token) to
//     their channel (with `--day-quota one-clip`, an origin whose day quota holds one clip and
//     not two, a second upload is refused with `quota_day`); /channel/{A} shows it with its
//     poster, duration and view count; A makes it private on /account;
//   B, signed out, meets the private-video page with a sign-in link, signs up from there (a
//     handle taken in another case is refused) and is sent back, to the same page: it is not
//     shared with B; A shares it with B; B plays it and reports it (and, in the first
//     language, the view counts after 10 s of playback);
//   M signs up, is refused the report queue, is made a moderator with the bootstrap token,
//     and takes the video down from /moderation with a note (in the first language, the first
//     report gates it instead: B confirms before it plays, and reports it again);
//   A reads the decision and the note on /account, makes an API token (shown once) and
//     revokes it, signs out, is refused a wrong password and signs in again.
// `--clip` must be longer than 10 s. The last line is `N passed, N failed`.

import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { request } from 'playwright-core'

import { assert, harness, parseArgs } from './harness.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const GATE_NOTE = 'Graphic content: viewers confirm first. 시청 전 확인. يُطلب التأكيد.'
const TOTAL_LIMIT_MS = 225_000

const args = parseArgs(process.argv.slice(2))
const env = process.env
const opt = {
  base: (args.base ?? env.BROWSER_BASE_URL ?? '').replace(/\/$/, ''),
  spki: args.spki ?? env.BROWSER_SPKI,
  clip: args.clip ?? env.BROWSER_CLIP,
  creatorToken: args['creator-token'] ?? env.CREATOR_TOKEN ?? 'dev-creator-token',
  locales: (args.locales ?? 'en,ko,ar').split(',').filter(Boolean),
  screenshots: args.screenshots ?? env.BROWSER_SCREENSHOTS ?? 'browser-screenshots',
  chromium: args.chromium ?? env.CHROMIUM ?? '/usr/bin/chromium',
  readyTimeout: Number(args['ready-timeout'] ?? 120) * 1000,
  oneClipADay: args['day-quota'] === 'one-clip',
}
if (!opt.base || !opt.spki || !opt.clip) {
  console.error('usage: node accounts.mjs --base URL --spki SPKI --clip FILE [options]; see the top of this file')
  process.exit(2)
}
const { test, blocked, until, launch, newContext, shot, run } = harness({
  screenshots: opt.screenshots,
  chromium: opt.chromium,
  spki: opt.spki,
  totalLimitMs: TOTAL_LIMIT_MS,
})

/** What each language's people are called and say: names, titles and notes in its script. */
const PEOPLE = {
  en: {
    browser: 'en-US',
    a: 'Alice Moreau',
    b: 'Bob Okafor',
    m: 'Mira Jensen',
    title: 'Alice’s private clip',
    report: 'This is my video, uploaded without my permission.',
    note: 'Copyright claim upheld: the reporter owns the footage.',
  },
  ko: {
    browser: 'ko-KR',
    a: '김서연',
    b: '박지훈',
    m: '이민지',
    title: '서연의 비공개 영상 🎬',
    report: '제 영상을 허락 없이 올렸습니다.',
    note: '저작권 침해가 확인되어 삭제합니다.',
  },
  ar: {
    browser: 'ar-EG',
    a: 'ليلى حسن',
    b: 'عمر خالد',
    m: 'مريم سعيد',
    title: 'مقطع ليلى الخاص',
    report: 'هذا الفيديو لي ورُفع دون إذني.',
    note: 'ثبت انتهاك حقوق النشر، لذا أُزيل الفيديو.',
  },
}

function strings(lang) {
  return JSON.parse(readFileSync(join(HERE, '..', 'i18n', `${lang}.json`), 'utf8'))
}

/** The page's <html lang dir> and a string it shows, in `lang`. */
async function speaks(page, lang, selector, text) {
  await until(page, `${selector} in ${lang}`, ([s, t]) => document.querySelector(s)?.textContent.trim() === t, [selector, text], 10_000)
  const [l, dir] = await page.evaluate(() => [document.documentElement.lang, document.documentElement.dir])
  assert(l === lang, `<html lang=${lang}>: ${l}`)
  assert(dir === (lang === 'ar' ? 'rtl' : 'ltr'), `<html dir> for ${lang}: ${dir}`)
}

/** Signs up on /account (already open) with `person`. */
async function signUp(page, person) {
  await page.waitForSelector('#signup-form', { state: 'visible' })
  await page.fill('#signup-handle', person.handle)
  await page.fill('#signup-name', person.name)
  await page.fill('#signup-password', person.password)
  await page.click('#signup-submit')
}

/** The admin API with the bootstrap token: makes `handle` a moderator. */
async function promote(api, handle) {
  const r = await api.put(`${opt.base}/v1/users/${encodeURIComponent(handle)}/role`, {
    headers: { authorization: `Bearer ${opt.creatorToken}` },
    data: { role: 'moderator' },
  })
  const body = await r.text()
  assert(r.status() === 200, `PUT /v1/users/${handle}/role {"role":"moderator"} with the bootstrap token: ${r.status()} ${body}`)
  assert(JSON.parse(body).role === 'moderator', `the account is now a moderator: ${body}`)
}

/**
 * One language's run. `full`: also wait for B's view to count (10 s of playback), and have
 * the first report gate the video (B confirms before it plays, and reports it again) before
 * the second takes it down; one language shows these as well as three.
 */
async function language(browser, api, lang, { full }) {
  const countView = full
  const s = strings(lang)
  const who = PEOPLE[lang]
  const suffix = randomBytes(3).toString('hex')
  const person = (key) => ({ handle: `${key}_${lang}_${suffix}`, name: who[key], password: `pässwörd ${lang} ${suffix}` })
  const [a, b, m] = [person('a'), person('b'), person('m')]
  const contexts = await Promise.all([0, 1, 2].map(() => newContext(browser, { locale: who.browser })))
  const [pageA, pageB, pageM] = await Promise.all(contexts.map((c) => c.newPage()))
  const errors = []
  for (const [name, page] of [['A', pageA], ['B', pageB], ['M', pageM]]) {
    page.on('pageerror', (err) => errors.push(`${name}: ${err.message}`))
  }
  const noScriptErrors = () => assert(errors.length === 0, `no script errors: ${errors.join('; ')}`)
  let videoId = null
  const row = () => `#my-videos .my-video[data-id="${videoId}"]`

  try {
    const signedUp = await test(
      `[${lang}] account page: A signs up (a name in the language's script), sees the quota and no videos`,
      async () => {
        await pageA.goto(`${opt.base}/account`)
        await speaks(pageA, lang, '#signed-out-title', s.account.welcome)
        assert((await pageA.textContent('[data-nav="account"]')).trim() === s.common.sign_in, 'the header offers to sign in')
        await signUp(pageA, a)
        await pageA.waitForSelector('#signed-in:not([hidden])')
        assert((await pageA.textContent('#who-handle')) === `@${a.handle}`, 'the handle is shown')
        assert((await pageA.textContent('#who-name')) === a.name, `the display name as typed: ${await pageA.textContent('#who-name')}`)
        assert((await pageA.getAttribute('#who-role', 'data-role')) === 'creator', 'a new account is a creator')
        assert(await pageA.isVisible('#quota'), 'the quota is shown')
        assert((await pageA.textContent('#quota-total-text')).trim() !== '', 'with the total used')
        await until(pageA, 'the empty list', (t) => document.querySelector('#videos-status').textContent === t, s.account.no_videos)
        assert((await pageA.textContent('[data-nav="account"]')).trim() === s.common.account, 'the header links to the account now')
        await shot(pageA, `account-${lang}.png`)
      },
      { page: pageA },
    )
    if (!signedUp) return blocked(`[${lang}] the rest`, 'A could not sign up')

    await test(
      `[${lang}] upload page: signed in, no token asked; privacy, channel and quota; the clip goes up and is ready`,
      async () => {
        await pageA.goto(`${opt.base}/upload`)
        await pageA.waitForSelector('#signed-in-as:not([hidden])')
        assert(await pageA.isHidden('#token-field'), 'no token field for a signed-in creator')
        assert(await pageA.isVisible('#quota'), 'the quota is shown')
        assert((await pageA.inputValue('#channel')) === a.handle, `A's channel is chosen: ${await pageA.inputValue('#channel')}`)
        await speaks(pageA, lang, 'label[for="privacy"]', s.upload.privacy)
        await pageA.setInputFiles('#file', opt.clip)
        await pageA.fill('#title', who.title)
        await pageA.selectOption('#privacy', 'public')
        await shot(pageA, `upload-form-${lang}.png`)
        await pageA.click('#start')
        await pageA.waitForSelector('#state-panel:not([hidden])', { timeout: 30_000 })
        videoId = await pageA.getAttribute('#state-panel', 'data-video')
        assert(/^[0-9a-f]+$/.test(videoId ?? ''), `a video id: ${videoId}`)
        await pageA.waitForSelector('#state-panel[data-state="ready"]', { timeout: opt.readyTimeout })
        await shot(pageA, `upload-${lang}.png`)
      },
      { timeout: opt.readyTimeout + 30_000, page: pageA },
    )
    if (!videoId) return blocked(`[${lang}] the rest`, 'no video was uploaded')

    if (full && opt.oneClipADay) {
      await test(
        `[${lang}] upload page: a second upload past the day's quota is refused before any byte, with its code in words`,
        async () => {
          await pageA.click('#another')
          await pageA.setInputFiles('#file', opt.clip)
          await pageA.fill('#title', `${who.title} 2`)
          await pageA.click('#start')
          await pageA.waitForSelector('#form-error[data-code="quota_day"]')
          const text = await pageA.textContent('#form-error')
          assert(text === s.errors.quota_day.replace('{code}', 'quota_day'), `the refusal in words: ${text}`)
          assert(await pageA.isHidden('#progress-panel'), 'no upload started')
          const bar = await pageA.getAttribute('#quota-day', 'data-full')
          assert(bar === 'false', `the day's meter is not full: ${bar}`)
        },
        { page: pageA },
      )
    }

    await test(
      `[${lang}] channel page: the public video with its poster, duration and view count`,
      async () => {
        await pageB.goto(`${opt.base}/channel/${a.handle}`)
        await speaks(pageB, lang, '#channel-name', a.name)
        const card = `#videos .card[data-id="${videoId}"]`
        await pageB.waitForSelector(card)
        assert((await pageB.textContent(`${card} .card-title`)) === who.title, 'the title as typed')
        assert(/^\d+:\d\d$/.test(await pageB.textContent(`${card} .thumb-duration`)), 'the duration')
        assert((await pageB.getAttribute(`${card} .views`, 'data-count')) === '0', 'no views yet')
        await until(pageB, 'the poster', (sel) => document.querySelector(sel)?.naturalWidth > 0, `${card} img`, 15_000)
        await shot(pageB, `channel-${lang}.png`)
      },
      { page: pageB },
    )

    const madePrivate = await test(
      `[${lang}] account page: A sees the video ready and makes it private`,
      async () => {
        await pageA.goto(`${opt.base}/account`)
        await pageA.waitForSelector(`${row()}[data-state="ready"]`)
        assert(await pageA.isHidden(`${row()} .share`), 'no sharing while public')
        await pageA.selectOption(`${row()} select.privacy`, 'private')
        await pageA.waitForSelector(`${row()}[data-privacy="private"] .share:not([hidden])`)
        await until(pageA, 'saved', ([sel, t]) => document.querySelector(sel)?.textContent === t, [`${row()} .saved`, s.account.saved])
      },
      { page: pageA },
    )
    if (!madePrivate) return blocked(`[${lang}] the rest`, 'the video could not be made private')

    await test(
      `[${lang}] watch page: private; signed out it offers to sign in, B signs up there (a taken handle is refused) and comes back: not shared`,
      async () => {
        await pageB.goto(`${opt.base}/watch/${videoId}`)
        await pageB.waitForSelector('#notice[data-notice="private"]')
        await speaks(pageB, lang, '#notice-title', s.notice.private.title)
        assert(await pageB.isHidden('#player'), 'no player')
        await shot(pageB, `watch-private-${lang}.png`)
        await pageB.click('#notice [data-action="sign-in"]')
        await pageB.waitForURL(/\/account\?next=/)
        await pageB.waitForSelector('#next-hint:not([hidden])')
        await shot(pageB, `account-sign-in-${lang}.png`)
        // Handles are unique ignoring case.
        await signUp(pageB, { ...b, handle: a.handle.toUpperCase() })
        await pageB.waitForSelector('#signup-error[data-code="handle_taken"]')
        assert((await pageB.textContent('#signup-error')) === s.errors.handle_taken, 'the refusal in words')
        await pageB.fill('#signup-handle', b.handle)
        await pageB.click('#signup-submit')
        await pageB.waitForURL(new RegExp(`/watch/${videoId}$`))
        await pageB.waitForSelector('#notice[data-notice="private_not_shared"]')
        assert(await pageB.isVisible('#notice [data-action="account"]'), 'a way to sign in with another account')
        await pageB.goto(`${opt.base}/channel/${a.handle}`)
        await until(pageB, 'the channel without its private video', () => document.querySelector('#channel-name')?.textContent && !document.querySelector('#videos .card'))
      },
      { page: pageB },
    )

    await test(
      `[${lang}] account page: A shares the private video with B`,
      async () => {
        await pageA.fill(`${row()} .share-handle`, b.handle)
        await pageA.click(`${row()} .share-form button[type="submit"]`)
        await pageA.waitForSelector(`${row()} .shares li[data-handle="${b.handle}"]`)
        const shown = await pageA.textContent(`${row()} .shares li[data-handle="${b.handle}"] bdi`)
        assert(shown === b.name, `B's display name: ${shown}`)
        await shot(pageA, `account-shared-${lang}.png`)
      },
      { page: pageA },
    )

    const reported = await test(
      `[${lang}] watch page: B plays the shared video and reports it${countView ? '; the view counts after 10 s of playback' : ''}`,
      async () => {
        await pageB.goto(`${opt.base}/watch/${videoId}`)
        await until(
          pageB,
          'playback past 1 s',
          () => {
            const v = document.querySelector('video')
            return document.querySelector('#notice').hidden && v && v.currentTime > 1 && !v.paused
          },
          null,
          30_000,
        )
        assert((await pageB.textContent('#title')) === who.title, 'the title')
        await speaks(pageB, lang, '#report-button', s.watch.report)
        await pageB.click('#report-button')
        await pageB.waitForSelector('#report-dialog[open] #report-form:not([hidden])')
        await pageB.selectOption('#report-reason', 'copyright')
        await pageB.fill('#report-text', who.report)
        await pageB.click('#report-send')
        await pageB.waitForSelector('#report-done:not([hidden])')
        assert((await pageB.textContent('#report-done')) === s.watch.report_thanks, 'thanked')
        assert(await pageB.isDisabled('#report-button'), 'reported once')
        if (!countView) {
          // Stop before a view is reported: this language does not wait for it.
          await pageB.goto('about:blank')
          return
        }
        const at = await pageB.evaluate(() => document.querySelector('video').currentTime)
        await until(pageB, 'the view reported and counted', () => document.querySelector('#views')?.dataset.reported === 'true', null, 20_000)
        const count = await pageB.getAttribute('#views', 'data-count')
        assert(count === '1', `one view: ${count}`)
        const now = await pageB.evaluate(() => document.querySelector('video').currentTime)
        assert(now > at && now >= 10, `counted after 10 s of playback (at ${now.toFixed(1)} s)`)
        await shot(pageB, `watch-reported-${lang}.png`)
      },
      { timeout: 75_000, page: pageB },
    )
    if (!reported) return blocked(`[${lang}] moderation`, 'no report was made')

    const item = `#reports .report[data-video="${videoId}"]:not([data-decided])`
    const promoted = await test(
      `[${lang}] moderation: M is refused the queue, made a moderator with the bootstrap token, and sees B's report`,
      async () => {
        await pageM.goto(`${opt.base}/moderation`)
        await pageM.waitForSelector('#notice[data-notice="moderators_only"]')
        await pageM.click('#notice [data-action="sign-in"]')
        await signUp(pageM, m)
        await pageM.waitForURL(/\/moderation$/)
        await pageM.waitForSelector('#notice[data-notice="moderators_only"] [data-action="home"]')
        await promote(api, m.handle)
        await pageM.reload()
        await pageM.waitForSelector(item)
        await speaks(pageM, lang, `${item} .reason`, s.report.reason.copyright)
        assert((await pageM.textContent(`${item} .report-text`)) === who.report, "the reporter's words")
        assert((await pageM.textContent(`${item} .report-video`)) === who.title, 'the video title')
        assert(await pageM.isVisible('[data-nav="moderation"]'), 'the header links to the queue')
      },
      { page: pageM },
    )
    if (!promoted) return blocked(`[${lang}] moderation`, 'M cannot moderate')

    if (full) {
      await test(
        `[${lang}] moderation gates the video: B confirms before it plays, and reports it again`,
        async () => {
          await pageM.fill(`${item} textarea.note`, GATE_NOTE)
          await pageM.click(`${item} button[data-resolution="gated"]`)
          await pageM.waitForSelector(`#reports .report[data-video="${videoId}"][data-decided="gated"]`)
          await pageB.goto(`${opt.base}/watch/${videoId}`)
          await pageB.waitForSelector('#notice[data-notice="sensitive"]')
          await speaks(pageB, lang, '#notice-title', s.notice.sensitive.title)
          assert(await pageB.isHidden('#player'), 'no player before the viewer confirms')
          await shot(pageB, `watch-sensitive-${lang}.png`)
          await pageB.click('#notice [data-action="consent"]')
          await until(
            pageB,
            'playback after confirming',
            () => {
              const v = document.querySelector('video')
              return document.querySelector('#notice').hidden && v && v.currentTime > 0.5 && !v.paused
            },
            null,
            30_000,
          )
          await pageB.click('#report-button')
          await pageB.selectOption('#report-reason', 'illegal')
          await pageB.fill('#report-text', who.report)
          await pageB.click('#report-send')
          await pageB.waitForSelector('#report-done:not([hidden])')
          await pageB.goto('about:blank')
          await pageM.click('#refresh')
          await pageM.waitForSelector(`${item} .reason[data-reason="illegal"]`)
        },
        { timeout: 60_000, page: pageB },
      )
    }

    const takenDown = await test(
      `[${lang}] moderation: M takes the video down with a note`,
      async () => {
        await pageM.fill(`${item} textarea.note`, who.note)
        await shot(pageM, `moderation-${lang}.png`)
        await pageM.click(`${item} button[data-resolution="taken_down"]`)
        await pageM.waitForSelector(`#reports .report[data-video="${videoId}"][data-decided="taken_down"]`)
      },
      { page: pageM },
    )
    if (!takenDown) return blocked(`[${lang}] the creator sees the decision`, 'the video was not taken down')

    await test(
      `[${lang}] account page: A sees the takedown with its reason and the moderator's note; B's page says removed`,
      async () => {
        await pageA.reload()
        const takedown = `${row()}[data-state="deleted"] .moderation-note[data-resolution="taken_down"]`
        await pageA.waitForSelector(takedown)
        const note = await pageA.textContent(`${takedown} .moderation-note-text`)
        assert(note === who.note, `the note as written: ${note}`)
        const reason = await pageA.textContent(`${takedown} strong`)
        const why = s.report.reason[full ? 'illegal' : 'copyright']
        assert(reason.includes(why), `the reason, ${why}: ${reason}`)
        if (full) {
          const gate = await pageA.textContent(`${row()} .moderation-note[data-resolution="gated"] .moderation-note-text`)
          assert(gate === GATE_NOTE, `the gating's note too: ${gate}`)
        }
        assert(await pageA.isHidden(`${row()} .my-video-controls`), 'nothing left to change')
        if (countView) {
          const views = await pageA.getAttribute(`${row()} .views`, 'data-count')
          assert(views === '1', `B's view is counted: ${views}`)
        }
        await shot(pageA, `account-taken-down-${lang}.png`)
        await pageB.goto(`${opt.base}/watch/${videoId}`)
        await pageB.waitForSelector('#notice[data-notice="deleted"]')
      },
      { page: pageA },
    )

    await test(
      `[${lang}] account page: an API token shown once, listed and revoked; sign out, a wrong password refused, sign in again; the password changed with the current one`,
      async () => {
        await pageA.fill('#token-name', `CI ${lang}`)
        await pageA.check('#token-form input[value="manage"]')
        await pageA.click('#token-create')
        await pageA.waitForSelector('#new-token:not([hidden])')
        const token = await pageA.inputValue('#new-token-value')
        assert(/^vt_[0-9a-f]+\./.test(token), `an API token: ${token.slice(0, 12)}…`)
        const name = `CI ${lang}`
        const item = `#token-list li:has(.token-name:text-is("${name}"))`
        await pageA.waitForSelector(item)
        await pageA.click(`${item} button`)
        await until(
          pageA,
          'the token revoked (marked so, or gone from the list)',
          (n) => [...document.querySelectorAll('#token-list li')].every((li) => li.querySelector('.token-name').textContent !== n || li.dataset.revoked === 'true'),
          name,
        )
        await pageA.click('#signout')
        await pageA.waitForSelector('#signed-out:not([hidden])')
        assert((await pageA.textContent('[data-nav="account"]')).trim() === s.common.sign_in, 'signed out in the header too')
        await pageA.fill('#signin-handle', a.handle)
        await pageA.fill('#signin-password', 'not the password')
        await pageA.click('#signin-submit')
        await pageA.waitForSelector('#signin-error[data-code="bad_credentials"]')
        assert((await pageA.textContent('#signin-error')) === s.errors.bad_credentials, 'the refusal in words')
        await pageA.fill('#signin-password', a.password)
        await pageA.click('#signin-submit')
        await pageA.waitForSelector(`#signed-in:not([hidden]) ${row()}[data-state="deleted"]`)

        // The password changes only with the current one; then the new one signs in.
        const renewed = `${a.password} renewed`
        await pageA.fill('#password-current', 'not the password')
        await pageA.fill('#password-new', renewed)
        await pageA.click('#password-submit')
        await pageA.waitForSelector('#password-error[data-code="wrong_password"]')
        assert((await pageA.textContent('#password-error')) === s.errors.wrong_password, 'the wrong current password in words')
        await pageA.fill('#password-current', a.password)
        await pageA.click('#password-submit')
        await pageA.waitForSelector('#password-done:not([hidden])')
        const done = (await pageA.textContent('#password-done')).trim()
        assert(done === s.account.password_changed, `the change confirmed in words: ${done}`)
        await pageA.click('#signout')
        await pageA.waitForSelector('#signed-out:not([hidden])')
        await pageA.fill('#signin-handle', a.handle)
        await pageA.fill('#signin-password', renewed)
        await pageA.click('#signin-submit')
        await pageA.waitForSelector(`#signed-in:not([hidden]) ${row()}[data-state="deleted"]`)
        noScriptErrors()
      },
      { page: pageA },
    )
  } finally {
    await Promise.all(contexts.map((c) => c.close().catch(() => {})))
  }
}

async function main() {
  const browser = await launch(['--autoplay-policy=no-user-gesture-required'])
  const api = await request.newContext({ ignoreHTTPSErrors: true })
  try {
    for (const [i, lang] of opt.locales.entries()) {
      if (!PEOPLE[lang]) throw new Error(`no people for --locales ${lang}`)
      await language(browser, api, lang, { full: i === 0 })
    }
  } finally {
    await api.dispose()
  }
}

await run(main)
