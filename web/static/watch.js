// /watch/{id}: what the viewer sees, from the first request to the last frame. A ready video
// plays; anything else gets its own clear page: not ready yet (with live progress, and the
// video starts by itself when it is ready), private (with a way to sign in), marked sensitive
// (the viewer confirms first), removed, failed, an expired or invalid link, a browser that
// cannot play HLS, or a network problem. Under the video: its view count (a view is reported
// after 10 s of playback, with the grant's token) and a way to report it to moderators.

import { accountHint, diagnose, followEvents, getVideo, playback, playbackUrls, reportVideo, reportView } from './api.js'
import { showError } from './errors.js'
import { clock, date, percent } from './format.js'
import { initI18n, mountLanguagePickers, onLanguageChange, setText, t } from './i18n.js'
import { refreshNav } from './nav.js'
import { hideNotice, noticeFor, showNotice } from './notice.js'
import { Player, playbackEngine } from './player.js'

const RESUME_PREFIX = 'resume:'
/** Seconds of playback before the page reports a view (the API counts none sooner). */
const VIEW_AFTER_S = 10

const params = new URLSearchParams(location.search)
const id = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] ?? '')
const notice = document.getElementById('notice')
const playerRoot = document.getElementById('player')
let player = null
let meta = null
let stopEvents = null
// Tokens handed to the page (an embed, a link from a site that signs for its viewers).
let givenToken = params.get('token')
const givenKeyToken = params.get('key_token')
// `?engine=hls` or `?engine=dash` plays with that engine where the browser can.
const forcedEngine = params.get('engine')
// The viewer confirmed they want to see a video marked sensitive.
let consented = false
// Seconds actually played since this video was loaded, and whether its view was reported.
let played = 0
let viewReported = false
let viewRetry = null

if (givenToken) {
  // Out of the address bar, so a copied link does not pass them on.
  params.delete('token')
  params.delete('key_token')
  const query = params.toString()
  const clean = `${location.pathname}${query ? `?${query}` : ''}${location.hash}`
  history.replaceState(history.state, '', clean)
}

function startTime() {
  const asked = Number(params.get('t'))
  if (Number.isFinite(asked) && asked > 0) return asked
  try {
    const saved = Number(localStorage.getItem(RESUME_PREFIX + id))
    const d = meta?.duration ?? 0
    if (saved > 5 && (!d || saved < d - 10)) return saved
  } catch {}
  return 0
}

function rememberPosition(seconds, duration) {
  try {
    if (seconds > 5 && duration && seconds < duration - 10) localStorage.setItem(RESUME_PREFIX + id, String(seconds))
    else localStorage.removeItem(RESUME_PREFIX + id)
  } catch {}
}

function renderMeta() {
  const info = document.getElementById('info')
  if (!meta) {
    info.hidden = true
    return
  }
  info.hidden = false
  document.getElementById('title').textContent = meta.title
  document.getElementById('description').textContent = meta.description ?? ''
  const bits = []
  if (meta.duration) bits.push(clock(meta.duration))
  if (meta.created_at) bits.push(date(meta.created_at))
  if (meta.state !== 'ready') bits.push(t(`state.${meta.state}`))
  const metaLine = document.getElementById('meta')
  metaLine.textContent = bits.join(' · ')
  if (meta.channel_handle) {
    // The channel it is listed in, named as its creator calls it (any script).
    const link = document.createElement('a')
    link.id = 'channel-link'
    link.href = `/channel/${encodeURIComponent(meta.channel_handle)}`
    link.dir = 'auto'
    link.textContent = meta.channel_name || `@${meta.channel_handle}`
    metaLine.prepend(link, bits.length ? ' · ' : '')
  }
  const views = document.getElementById('views')
  views.dataset.count = String(meta.views ?? 0)
  setText(views, 'common.views', { count: meta.views ?? 0 })
  document.title = t('watch.document_title_video', { title: meta.title })
  if ('mediaSession' in navigator && window.MediaMetadata) {
    navigator.mediaSession.metadata = new MediaMetadata({ title: meta.title })
  }
}

/** Shows the page for an error from the API, the PoP or the player. */
function fail(error) {
  stopEvents?.()
  player?.unload()
  playerRoot.hidden = true
  const kind = error.failed ? 'failed' : noticeFor(error.code, error.status)
  const home = { key: 'notice.back_to_catalogue', href: '/', id: 'home' }
  const retry = { key: 'notice.retry', run: () => begin(), primary: true, id: 'retry' }
  const renew = (key) => ({
    key,
    primary: true,
    id: 'renew',
    run: () => {
      // Forget the token we were given and ask for our own, then carry on where we were.
      givenToken = null
      begin({ resumeAt: player?.position ?? 0 })
    },
  })
  const code = ['unsupported', 'not_found', 'deleted', 'private', 'sensitive'].includes(kind) ? null : error.code
  const back = encodeURIComponent(`${location.pathname}${location.search}`)
  switch (kind) {
    case 'private':
      // Nobody signed in (401): sign in. Signed in as someone it is not shared with (403).
      return showNotice(notice, error.status === 401 ? 'private' : 'private_not_shared', {
        actions: [
          error.status === 401
            ? { key: 'common.sign_in', href: `/account?next=${back}`, primary: true, id: 'sign-in' }
            : { key: 'notice.switch_account', href: `/account?next=${back}`, id: 'account' },
          home,
        ],
      })
    case 'sensitive':
      return showNotice(notice, kind, {
        actions: [
          {
            key: 'notice.sensitive.action',
            primary: true,
            id: 'consent',
            run: () => {
              consented = true
              begin()
            },
          },
          home,
        ],
      })
    case 'token_expired':
      return showNotice(notice, kind, { code, actions: [renew('notice.token_expired.action'), home] })
    case 'bad_token':
      return showNotice(notice, kind, { code, actions: [renew('notice.bad_token.action'), home] })
    case 'not_found':
    case 'deleted':
    case 'unsupported':
    case 'failed':
      return showNotice(notice, kind, { code, actions: [home] })
    default:
      return showNotice(notice, kind, { code, actions: [retry, home] })
  }
}

/** Not ready yet: live state and progress from the events stream; plays by itself when ready. */
function waitUntilReady() {
  const box = document.createElement('div')
  box.className = 'notice-progress'
  const state = document.createElement('p')
  state.className = 'notice-state'
  const bar = document.createElement('progress')
  bar.max = 1
  bar.value = 0
  bar.setAttribute('aria-labelledby', 'notice-state')
  state.id = 'notice-state'
  box.append(state, bar)
  const show = (s, progress) => {
    setText(state, 'notice.not_ready.state', { state: t(`state.${s}`), percent: percent(progress) })
    if (s === 'queued' || s === 'uploading') bar.removeAttribute('value')
    else bar.value = progress
    notice.dataset.state = s
  }
  showNotice(notice, 'not_ready', {
    extra: box,
    actions: [{ key: 'notice.back_to_catalogue', href: '/', id: 'home' }],
  })
  show(meta.state, meta.progress)
  stopEvents?.()
  stopEvents = followEvents(id, (event) => {
    meta = { ...meta, state: event.state, progress: event.progress, error_code: event.error_code }
    if (event.state === 'ready') {
      // Read the finished record (duration, renditions), then play.
      begin()
    } else if (event.state === 'failed') {
      fail({ code: event.error_code ?? 'failed', status: 0, failed: true })
    } else if (event.state === 'deleted') {
      fail({ code: 'deleted', status: 410 })
    } else {
      show(event.state, event.progress)
    }
  })
}

/** Shows the page for a video that will never play (deleted or failed); whether it was one. */
function failIfFinal(meta) {
  if (meta.state === 'deleted') fail({ code: 'deleted', status: 410 })
  else if (meta.state === 'failed') fail({ code: meta.error_code ?? 'failed', failed: true })
  else return false
  return true
}

/** After the player gave up: find out why from the server (a 403 says which token problem). */
async function explain(error) {
  if (error.kind === 'unsupported') return fail({ code: 'unsupported' })
  const found = await diagnose(error.url)
  if (found && found.code !== 'not_found') return fail(found)
  // The object is missing or fine: the video's state tells more than the player did.
  try {
    meta = await getVideo(id)
    renderMeta()
    if (failIfFinal(meta)) return
    if (meta.state !== 'ready') return waitUntilReady()
  } catch (err) {
    return fail(err)
  }
  fail({ code: error.kind === 'media' ? 'media' : found?.code ?? 'network', status: found?.status ?? 0 })
}

async function play(source, startAt) {
  hideNotice(notice)
  played = 0
  viewReported = false
  clearTimeout(viewRetry)
  player ??= new Player(playerRoot, { onFatal: explain })
  await player.load(source, { startAt, autoplay: true, engine: forcedEngine })
  playerRoot.focus({ preventScroll: true })
}

/** From the top: what is this video, and can it be played here? */
async function begin({ resumeAt = 0 } = {}) {
  stopEvents?.()
  const video = document.createElement('video')
  if (!playbackEngine(video)) {
    getVideo(id).then((v) => ((meta = v), renderMeta())).catch(() => {})
    return fail({ code: 'unsupported' })
  }
  try {
    meta = await getVideo(id)
    renderMeta()
  } catch (err) {
    // With a token in hand the video may still be playable (or the token says why not).
    if (!givenToken) return fail(err)
    meta = null
  }
  const at = resumeAt || startTime()
  if (givenToken) return play(playbackUrls(id, givenToken, givenKeyToken), at)
  if (failIfFinal(meta)) return
  if (meta.state !== 'ready') return waitUntilReady()
  try {
    const grant = await playback(id, { consent: consented })
    return play({ ...grant, duration: meta.duration, renew: () => playback(id, { consent: consented }) }, at)
  } catch (err) {
    if (err.code === 'not_ready') return waitUntilReady()
    return fail(err)
  }
}

/** Reports the view once this load has played long enough; a refusal to count is final. */
async function maybeReportView() {
  if (viewReported || played < VIEW_AFTER_S || !player?.token) return
  viewReported = true
  try {
    const { views } = await reportView(id, player.token)
    if (meta && Number.isFinite(views)) {
      meta = { ...meta, views }
      renderMeta()
    }
    document.getElementById('views').dataset.reported = 'true'
  } catch (err) {
    // The grant is younger than the server's 10 s (a renewed one): ask again a little later.
    if (err.code === 'too_early' || err.code === 'network') {
      viewRetry = setTimeout(() => {
        viewReported = false
        maybeReportView()
      }, 3000)
    }
  }
}

// ---- reporting a video to moderators ------------------------------------------------------

function wireReport() {
  const dialog = document.getElementById('report-dialog')
  const form = document.getElementById('report-form')
  const signIn = document.getElementById('report-sign-in')
  const error = document.getElementById('report-error')
  const button = document.getElementById('report-button')
  const done = document.getElementById('report-done')
  const askToSignIn = () => {
    form.hidden = true
    signIn.hidden = false
    const back = encodeURIComponent(`${location.pathname}${location.search}`)
    document.getElementById('report-sign-in-link').href = `/account?next=${back}`
  }
  button.addEventListener('click', () => {
    showError(error, null)
    form.hidden = false
    signIn.hidden = true
    if (!accountHint()) askToSignIn()
    if (dialog.showModal) dialog.showModal()
    ;(form.hidden ? document.getElementById('report-sign-in-link') : document.getElementById('report-reason')).focus()
  })
  for (const close of dialog.querySelectorAll('[data-close]')) close.addEventListener('click', () => dialog.close())
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    const reason = document.getElementById('report-reason').value
    const text = document.getElementById('report-text').value.trim()
    const send = document.getElementById('report-send')
    send.disabled = true
    try {
      await reportVideo(id, reason, text)
      dialog.close()
      form.reset()
      button.disabled = true
      setText(button, 'watch.reported')
      done.hidden = false
      setText(done, 'watch.report_thanks')
    } catch (err) {
      if (err.status === 401) {
        refreshNav()
        askToSignIn()
      } else {
        showError(error, err)
      }
    } finally {
      send.disabled = false
    }
  })
}

function wirePage() {
  const video = document.getElementById('video')
  let lastSaved = 0
  let lastTime = null
  video.addEventListener('timeupdate', () => {
    // Count only time that actually played (not seeks), towards the view.
    const now = video.currentTime
    if (lastTime !== null && !video.paused && !video.seeking) {
      const step = now - lastTime
      if (step > 0 && step < 1.5) played += step
    }
    lastTime = now
    maybeReportView()
    if (Math.abs(video.currentTime - lastSaved) < 5) return
    lastSaved = video.currentTime
    rememberPosition(video.currentTime, video.duration)
  })
  video.addEventListener('ended', () => rememberPosition(0, 0))
  video.addEventListener('seeking', () => (lastTime = null))
  video.addEventListener('emptied', () => (lastTime = null))
  wireReport()

  // Keys pressed with nothing focused (or the page itself) go to the player.
  document.addEventListener('keydown', (e) => {
    if (playerRoot.hidden || !player) return
    if (e.target === document.body || e.target === document.documentElement) player.key(e)
  })

  const dialog = document.getElementById('shortcuts')
  document.getElementById('keys-button').addEventListener('click', () => {
    if (dialog.showModal) dialog.showModal()
  })

  if ('mediaSession' in navigator) {
    const session = navigator.mediaSession
    const handlers = {
      play: () => player?.play(),
      pause: () => video.pause(),
      seekbackward: () => player?.seekBy(-10),
      seekforward: () => player?.seekBy(10),
      seekto: (d) => player?.seekTo(d.seekTime),
    }
    for (const [action, fn] of Object.entries(handlers)) {
      try {
        session.setActionHandler(action, fn)
      } catch {}
    }
  }

  onLanguageChange(() => {
    renderMeta()
    player?.relabel()
  })
}

async function main() {
  await initI18n()
  mountLanguagePickers()
  refreshNav()
  wirePage()
  if (!id) return fail({ code: 'not_found', status: 404 })
  await begin()
}

main()
