// /upload: pick or drop a file, describe it, choose who can watch it, and send it with tus
// (four parallel parts of 8 MiB chunks) through the PoP. Signed in, the video goes to one of
// the account's channels under the session, and the page shows the upload quota; a creator or
// API token can be used instead (scripts, the bootstrap token). An upload survives a reload:
// the video it belongs to and its tus URLs are kept in localStorage, and choosing the same
// file again continues it. Once the bytes are in, the events stream shows processing until
// the video is ready to watch.

import { createVideo, deleteVideo, followEvents, getVideo, me, meOrNull, rebase } from './api.js'
import { errorText } from './errors.js'
import { bytes, percent, rate, remaining } from './format.js'
import { initI18n, language, mountLanguagePickers, onLanguageChange, setText, t } from './i18n.js'
import { refreshNav } from './nav.js'
import { renderQuota } from './quota.js'

const CHUNK_SIZE = 8 * 1024 * 1024
// Four parts beat one stream where it matters, on a long lossy path: 1.25-1.34x the throughput
// at 50 ms RTT and 1% loss through a PoP (tests/tests/network.rs prints the ratio of each run).
const PARALLEL = 4
const TOKEN_KEY = 'creator-token'
const PENDING_KEY = 'pending-uploads'
const DEFAULT_TOKEN = 'dev-creator-token'
const SPOKEN = ['und', 'en', 'ko', 'ar', 'ja', 'zh', 'es', 'fr', 'de', 'pt', 'hi', 'id', 'ru', 'tr', 'vi']

const $ = (id) => document.getElementById(id)
const form = $('form')
const fileInput = $('file')
const titleInput = $('title')
const descriptionInput = $('description')
const spokenSelect = $('spoken')
const tokenInput = $('creator-token')
const privacySelect = $('privacy')
const channelSelect = $('channel')

let file = null
let upload = null
let current = null // {key, record}
let paused = false
let samples = []
let stopEvents = null
let lastPaint = 0
let account = null // GET /v1/me, when signed in

// ---- remembered uploads ------------------------------------------------------------------

function fileKey(f) {
  return [f.name, f.size, f.lastModified, f.type].join('|')
}

function pendingUploads() {
  try {
    return JSON.parse(localStorage.getItem(PENDING_KEY)) ?? {}
  } catch {
    return {}
  }
}

function savePending(key, record) {
  const all = pendingUploads()
  if (record) all[key] = record
  else delete all[key]
  try {
    localStorage.setItem(PENDING_KEY, JSON.stringify(all))
  } catch {}
  renderPending()
}

function renderPending() {
  const all = Object.entries(pendingUploads())
  const list = $('pending-list')
  list.replaceChildren()
  for (const [key, record] of all) {
    if (current?.key === key) continue
    const li = document.createElement('li')
    const title = document.createElement('span')
    title.className = 'title'
    title.dir = 'auto'
    title.textContent = record.title
    const detail = document.createElement('span')
    detail.className = 'hint'
    setText(detail, 'upload.pending_item', {
      name: record.name,
      percent: percent(record.size ? record.sent / record.size : 0),
    })
    const forget = document.createElement('button')
    forget.type = 'button'
    forget.className = 'button'
    setText(forget, 'upload.forget')
    forget.addEventListener('click', () => savePending(key, null))
    li.append(title, detail, forget)
    list.append(li)
  }
  $('pending').hidden = list.children.length === 0
}

// ---- form --------------------------------------------------------------------------------

function renderSpoken() {
  const chosen = spokenSelect.value || 'und'
  let names = null
  try {
    names = new Intl.DisplayNames([language()], { type: 'language' })
  } catch {}
  spokenSelect.replaceChildren()
  for (const code of SPOKEN) {
    const option = document.createElement('option')
    option.value = code
    option.textContent = code === 'und' ? t('upload.spoken_unknown') : (names?.of(code) ?? code)
    spokenSelect.append(option)
  }
  spokenSelect.value = chosen
}

function stem(name) {
  return name.replace(/\.[^.]+$/, '').replace(/[_]+/g, ' ').trim()
}

function choose(f) {
  if (!f) return
  file = f
  $('file-name').textContent = `${f.name} · ${bytes(f.size)}`
  const record = pendingUploads()[fileKey(f)]
  const note = $('resume-note')
  if (record) {
    titleInput.value = record.title
    descriptionInput.value = record.description ?? ''
    note.hidden = false
    setText(note, 'upload.resume_note', { percent: percent(record.size ? record.sent / record.size : 0) })
    setText($('start'), 'upload.resume')
  } else {
    if (!titleInput.value.trim()) titleInput.value = stem(f.name)
    note.hidden = true
    setText($('start'), 'upload.start')
  }
  showFormError(null)
}

function showFormError(key, vars) {
  const el = $('form-error')
  el.hidden = !key
  delete el.dataset.code
  if (key) setText(el, key, vars)
}

/** A refusal from the API, in words: quota codes and the like have their own sentences. */
function showApiError(err) {
  const { code, message } = describe(err)
  const [key, vars] = errorText({ code, message, retryAfter: err?.retryAfter })
  showFormError(key === 'errors.generic' ? 'upload.failed' : key, { ...vars, code, message })
  $('form-error').dataset.code = code
}

// ---- the account -------------------------------------------------------------------------

/** Whether this upload goes with a token (typed in) rather than the signed-in session. */
function usesToken() {
  return !account || !$('token-field').hidden
}

function renderAccount() {
  const signedIn = Boolean(account)
  $('signed-in-as').hidden = !signedIn
  $('sign-in-hint').hidden = signedIn
  $('token-field').hidden = signedIn && $('use-token').getAttribute('aria-expanded') !== 'true'
  const channels = account?.channels ?? []
  $('channel-field').hidden = !signedIn || channels.length === 0
  if (signedIn) {
    setText($('signed-in-as-text'), 'upload.signed_in_as', { handle: `\u2066@${account.user.handle}\u2069` })
    const chosen = channelSelect.value
    channelSelect.replaceChildren(
      ...channels.map((c) => {
        const option = document.createElement('option')
        option.value = c.handle
        option.textContent = c.name && c.name !== c.handle ? `${c.name} (@${c.handle})` : `@${c.handle}`
        return option
      }),
    )
    if (channels.some((c) => c.handle === chosen)) channelSelect.value = chosen
  }
  renderQuota(account?.quota ?? null)
}

async function loadAccount({ fresh = false } = {}) {
  try {
    account = fresh ? await me({ fresh: true }) : await meOrNull()
  } catch {
    account = null
  }
  renderAccount()
  refreshNav()
}

function renderPrivacyHint() {
  setText($('privacy-hint'), `privacy_hint.${privacySelect.value}`)
}

/** A tus-js-client error as {status, code, message}, reading the server's JSON when there is one. */
function describe(err) {
  const response = err?.originalResponse
  if (response) {
    const status = response.getStatus()
    let code = `http_${status}`
    let message = ''
    try {
      const body = JSON.parse(response.getBody())
      code = body?.error?.code ?? code
      message = body?.error?.message ?? ''
    } catch {}
    return { status, code, message }
  }
  if (err?.code) return { status: err.status ?? 0, code: err.code, message: err.message }
  return { status: 0, code: 'network', message: String(err?.message ?? err) }
}

// ---- tus ---------------------------------------------------------------------------------

/**
 * Every tus request goes to this page's origin, whatever host the server put in its URLs
 * (the PoP's public name), so the page works under any name and over HTTP/3.
 */
function sameOriginStack() {
  const inner = new window.tus.DefaultHttpStack()
  return {
    createRequest: (method, url) => inner.createRequest(method, rebase(url)),
    getName: () => 'same-origin',
  }
}

async function startUpload(key, record) {
  current = { key, record }
  paused = false
  samples = []
  form.hidden = true
  $('pending').hidden = true
  $('progress-panel').hidden = false
  $('upload-error').hidden = true
  setText($('pause'), 'upload.pause')
  setText($('progress-title'), 'upload.uploading_title', { title: record.title })
  paint(record.sent ?? 0, record.size, true)

  upload = new window.tus.Upload(file, {
    endpoint: rebase(record.endpoint),
    httpStack: sameOriginStack(),
    chunkSize: CHUNK_SIZE,
    parallelUploads: PARALLEL,
    retryDelays: [0, 1000, 3000, 5000, 10000, 20000],
    metadata: { filename: file.name, filetype: file.type || 'application/octet-stream' },
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: true,
    onProgress: (sent, total) => paint(sent, total),
    onError: (err) => {
      const { code, message } = describe(err)
      const el = $('upload-error')
      el.hidden = false
      setText(el, 'upload.failed', { code, message })
      paused = true
      setText($('pause'), 'upload.resume_short')
    },
    onSuccess: () => {
      savePending(key, null)
      current = null
      if (account) loadAccount({ fresh: true })
      paint(record.size, record.size, true)
      processing(record.video)
    },
  })
  const previous = await upload.findPreviousUploads()
  previous.sort((a, b) => Date.parse(b.creationTime) - Date.parse(a.creationTime))
  if (previous[0]) upload.resumeFromPreviousUpload(previous[0])
  upload.start()
}

function paint(sent, total, force = false) {
  const now = performance.now()
  samples.push([now, sent])
  while (samples.length > 2 && now - samples[0][0] > 5000) samples.shift()
  if (current && (force || now - (current.savedAt ?? 0) > 1000)) {
    current.savedAt = now
    current.record.sent = sent
    savePending(current.key, current.record)
  }
  if (!force && now - lastPaint < 200 && sent < total) return
  lastPaint = now
  const fraction = total ? sent / total : 0
  $('upload-progress').value = fraction
  $('upload-percent').textContent = percent(fraction)
  $('upload-bytes').textContent = `${bytes(sent)} / ${bytes(total)}`
  const [t0, s0] = samples[0]
  const speed = now > t0 ? ((sent - s0) / (now - t0)) * 1000 : 0
  const speedEl = $('upload-speed')
  const etaEl = $('upload-eta')
  if (speed > 0 && sent < total) {
    speedEl.textContent = rate(speed)
    setText(etaEl, 'upload.eta', { time: remaining((total - sent) / speed) })
  } else if (sent >= total) {
    if (speed > 0) speedEl.textContent = rate(speed)
    etaEl.textContent = ''
  }
}

async function submit(event) {
  event.preventDefault()
  if (!file) return showFormError('upload.need_file')
  const title = titleInput.value.trim()
  if (!title) {
    titleInput.focus()
    return showFormError('upload.need_title')
  }
  const withToken = usesToken()
  const token = withToken ? tokenInput.value.trim() : null
  if (withToken && !token) {
    tokenInput.focus()
    return showFormError(account ? 'upload.need_token' : 'upload.need_token_or_sign_in')
  }
  if (withToken) {
    try {
      localStorage.setItem(TOKEN_KEY, token)
    } catch {}
  }
  const key = fileKey(file)
  const start = $('start')
  start.disabled = true
  try {
    let record = pendingUploads()[key]
    if (record) {
      // Continue only while the video still waits for its bytes.
      const video = await getVideo(record.video, undefined, record.token ? token : undefined).catch(() => null)
      if (video?.state !== 'uploading' || (record.expiresAt && record.expiresAt * 1000 < Date.now())) {
        savePending(key, null)
        record = null
      }
    }
    if (!record) {
      const fields = {
        title,
        description: descriptionInput.value,
        language: spokenSelect.value || 'und',
        filename: file.name,
        size: file.size,
        content_type: file.type || 'application/octet-stream',
        privacy: privacySelect.value || 'public',
      }
      if (!withToken && channelSelect.value) fields.channel = channelSelect.value
      const created = await createVideo(token, fields)
      record = {
        video: created.video.id,
        endpoint: created.upload.url,
        expiresAt: created.upload.expires_at,
        title,
        description: descriptionInput.value,
        name: file.name,
        size: file.size,
        sent: 0,
        token: withToken,
      }
      savePending(key, record)
    }
    await startUpload(key, record)
  } catch (err) {
    showApiError(err)
  } finally {
    start.disabled = false
  }
}

// ---- after the upload --------------------------------------------------------------------

function processing(id) {
  $('progress-panel').hidden = true
  const panel = $('state-panel')
  panel.hidden = false
  panel.dataset.video = id
  const watch = $('watch-link')
  watch.href = `/watch/${encodeURIComponent(id)}`
  watch.hidden = true
  $('another').hidden = true
  const bar = $('state-progress')
  const show = (state, progress, code) => {
    panel.dataset.state = state
    setText($('state-title'), `upload.state.${state}`)
    const text = $('state-text')
    if (state === 'processing') setText(text, 'upload.processing', { percent: percent(progress) })
    else if (state === 'failed') setText(text, 'upload.processing_failed', { code: code ?? 'failed' })
    else if (state === 'ready') setText(text, 'upload.ready')
    else setText(text, `state.${state}`)
    if (state === 'processing') bar.value = progress
    else if (state === 'ready') bar.value = 1
    else bar.removeAttribute('value')
    bar.hidden = state === 'failed' || state === 'deleted'
    const final = ['ready', 'failed', 'deleted'].includes(state)
    watch.hidden = state !== 'ready'
    $('another').hidden = !final
    if (state === 'ready') watch.focus()
  }
  show('queued', 0)
  stopEvents?.()
  stopEvents = followEvents(id, (e) => show(e.state, e.progress, e.error_code))
}

function reset() {
  stopEvents?.()
  upload = null
  file = null
  current = null
  fileInput.value = ''
  titleInput.value = ''
  descriptionInput.value = ''
  $('file-name').textContent = ''
  $('resume-note').hidden = true
  setText($('start'), 'upload.start')
  $('state-panel').hidden = true
  $('progress-panel').hidden = true
  form.hidden = false
  renderPending()
  fileInput.focus()
}

function wire() {
  fileInput.addEventListener('change', () => choose(fileInput.files?.[0]))
  const drop = $('drop')
  for (const type of ['dragenter', 'dragover']) {
    drop.addEventListener(type, (e) => {
      e.preventDefault()
      drop.classList.add('is-over')
    })
  }
  for (const type of ['dragleave', 'drop']) drop.addEventListener(type, () => drop.classList.remove('is-over'))
  drop.addEventListener('drop', (e) => {
    e.preventDefault()
    choose(e.dataTransfer?.files?.[0])
  })
  // A file dropped beside the zone must not navigate away from the form.
  for (const type of ['dragover', 'drop']) window.addEventListener(type, (e) => e.preventDefault())

  form.addEventListener('submit', submit)
  $('pause').addEventListener('click', () => {
    if (!upload) return
    if (paused) {
      paused = false
      samples = []
      $('upload-error').hidden = true
      setText($('pause'), 'upload.pause')
      upload.start()
    } else {
      paused = true
      upload.abort()
      setText($('pause'), 'upload.resume_short')
      $('upload-speed').textContent = ''
      setText($('upload-eta'), 'upload.paused')
    }
  })
  $('cancel').addEventListener('click', async () => {
    if (!upload || !current) return
    const { key, record } = current
    await upload.abort(true).catch(() => {})
    savePending(key, null)
    // The video was only waiting for these bytes: take it down too.
    const token = record.token ? tokenInput.value.trim() : null
    deleteVideo(record.video, 'upload cancelled by its creator', token).catch(() => {})
    reset()
  })
  $('another').addEventListener('click', reset)
  window.addEventListener('beforeunload', (e) => {
    // The upload would resume after a reload, but leaving mid-upload is rarely meant.
    if (upload && current && !paused) e.preventDefault()
  })
  privacySelect.addEventListener('change', renderPrivacyHint)
  $('use-token').addEventListener('click', () => {
    const button = $('use-token')
    const open = button.getAttribute('aria-expanded') !== 'true'
    button.setAttribute('aria-expanded', String(open))
    setText(button, open ? 'upload.use_session' : 'upload.use_token')
    renderAccount()
    if (open) tokenInput.focus()
  })
  onLanguageChange(() => {
    renderSpoken()
    renderPending()
    renderAccount()
  })
}

async function main() {
  await initI18n()
  mountLanguagePickers()
  refreshNav()
  renderSpoken()
  renderPrivacyHint()
  let token = null
  try {
    token = localStorage.getItem(TOKEN_KEY)
  } catch {}
  tokenInput.value = token ?? DEFAULT_TOKEN
  renderPending()
  wire()
  if (!window.tus?.isSupported) showFormError('upload.unsupported')
  await loadAccount()
}

main()
