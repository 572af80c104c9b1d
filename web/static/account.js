// /account: sign in or make an account; once signed in, who you are, your upload quota, your
// videos in every state (with failure codes and moderators' decisions), who can watch each
// and whom a private one is shared with, and personal API tokens. `?next=/path` sends a
// visitor back to where they were once signed in.

import {
  changePassword,
  createToken,
  listShares,
  listTokens,
  meOrNull,
  myVideos,
  patchVideo,
  revokeToken,
  share,
  signIn,
  signOut,
  signOutEverywhere,
  signUp,
  unshare,
  hasRole,
} from './api.js'
import { element } from './dom.js'
import { showError } from './errors.js'
import { clock, date, percent } from './format.js'
import { initI18n, mountLanguagePickers, onLanguageChange, setText, t } from './i18n.js'
import { refreshNav } from './nav.js'
import { renderQuota } from './quota.js'

const REFRESH_MS = 4000
const PRIVACY = ['public', 'unlisted', 'private']
const HANDLE = /^[A-Za-z0-9_-]{3,30}$/

const $ = (id) => document.getElementById(id)
const status = $('status')
const list = $('my-videos')
const entries = new Map()
let account = null
let refreshTimer = null
let lastVideos = []

/** Where to go once signed in: a path on this site only. */
function nextPath() {
  const next = new URLSearchParams(location.search).get('next')
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return null
  return next
}

// ---- signed out ----------------------------------------------------------------------------

function showSignedOut() {
  account = null
  clearTimeout(refreshTimer)
  status.hidden = true
  $('signed-in').hidden = true
  $('signed-out').hidden = false
  $('next-hint').hidden = !nextPath()
  document.title = t('account.document_title_signed_out')
  document.body.dataset.signedIn = 'false'
  refreshNav()
}

async function afterSignIn() {
  refreshNav()
  const next = nextPath()
  if (next) {
    location.assign(next)
    return
  }
  for (const id of ['signin-password', 'signup-password']) $(id).value = ''
  await load()
  $('main').focus({ preventScroll: true })
}

async function submitSignIn(event) {
  event.preventDefault()
  const error = $('signin-error')
  const handle = $('signin-handle').value.trim()
  const password = $('signin-password').value
  if (!handle || !password) {
    showError(error, { code: 'missing_credentials' })
    return (handle ? $('signin-password') : $('signin-handle')).focus()
  }
  const button = $('signin-submit')
  button.disabled = true
  try {
    await signIn(handle, password)
    showError(error, null)
    await afterSignIn()
  } catch (err) {
    showError(error, err)
    $('signin-password').select()
  } finally {
    button.disabled = false
  }
}

async function submitSignUp(event) {
  event.preventDefault()
  const error = $('signup-error')
  const handle = $('signup-handle').value.trim()
  const password = $('signup-password').value
  if (!HANDLE.test(handle)) {
    showError(error, { code: 'bad_handle' })
    return $('signup-handle').focus()
  }
  if ([...password].length < 10) {
    showError(error, { code: 'weak_password' })
    return $('signup-password').focus()
  }
  const fields = { handle, password }
  const name = $('signup-name').value.trim()
  const email = $('signup-email').value.trim()
  if (name) fields.display_name = name
  if (email) fields.email = email
  const button = $('signup-submit')
  button.disabled = true
  try {
    await signUp(fields)
    showError(error, null)
    await afterSignIn()
  } catch (err) {
    showError(error, err)
    if (err.code === 'handle_taken' || err.code === 'bad_handle') $('signup-handle').focus()
    else if (err.code === 'weak_password') $('signup-password').focus()
  } finally {
    button.disabled = false
  }
}

// ---- signed in: who and how much ------------------------------------------------------------

function showSignedIn(answer) {
  account = answer
  status.hidden = true
  $('signed-out').hidden = true
  $('signed-in').hidden = false
  document.body.dataset.signedIn = 'true'
  renderWho()
  refreshNav()
}

function renderWho() {
  if (!account) return
  const { user, channels = [] } = account
  $('who-name').textContent = user.display_name || user.handle
  $('who-handle').textContent = `@${user.handle}`
  const role = $('who-role')
  role.dataset.role = user.role
  setText(role, `account.role.${user.role}`)
  const channel = channels[0]
  const link = $('channel-link')
  link.hidden = !channel
  if (channel) link.href = `/channel/${encodeURIComponent(channel.handle)}`
  $('moderation-link').hidden = !hasRole(user.role, 'moderator')
  document.title = t('account.document_title')
  renderQuota(account.quota)
}

// ---- signed in: videos ----------------------------------------------------------------------

function videoEntry(video) {
  let entry = entries.get(video.id)
  if (entry) return entry
  const li = element('li', 'my-video')
  li.dataset.id = video.id

  const main = element('div', 'my-video-main')
  const title = element('a', 'my-video-title', { dir: 'auto' })
  title.href = `/watch/${encodeURIComponent(video.id)}`
  const meta = element('div', 'card-meta')
  const badge = element('span', 'badge state')
  const privacyBadge = element('span', 'badge privacy')
  const duration = element('span', 'duration', { dir: 'ltr' })
  const views = element('span', 'views')
  const when = element('span', 'when')
  meta.append(badge, privacyBadge, duration, views, when)
  const failure = element('p', 'error my-video-failure')
  const notes = element('ul', 'moderation-notes')
  main.append(title, meta, failure, notes)

  const controls = element('div', 'my-video-controls')
  const privacyField = element('div', 'field')
  const privacyId = `privacy-${video.id}`
  const privacyLabel = element('label', null, { for: privacyId })
  setText(privacyLabel, 'account.privacy_label')
  const privacy = element('select', 'privacy', { id: privacyId })
  for (const p of PRIVACY) {
    const option = element('option')
    option.value = p
    setText(option, `privacy.${p}`)
    privacy.append(option)
  }
  const saved = element('span', 'hint saved', { role: 'status' })
  privacyField.append(privacyLabel, privacy, saved)

  const sharing = element('div', 'share')
  const shareForm = element('form', 'share-form', { novalidate: '' })
  const shareId = `share-${video.id}`
  const shareLabel = element('label', null, { for: shareId })
  setText(shareLabel, 'account.share_label')
  const shareRow = element('div', 'share-row')
  const shareInput = element('input', 'share-handle', {
    id: shareId,
    type: 'text',
    dir: 'ltr',
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: 'false',
    maxlength: '30',
  })
  shareInput.dataset.i18nAttr = 'placeholder:account.share_placeholder'
  shareInput.placeholder = t('account.share_placeholder')
  const shareButton = element('button', 'button', { type: 'submit' })
  setText(shareButton, 'account.share')
  shareRow.append(shareInput, shareButton)
  shareForm.append(shareLabel, shareRow)
  const shares = element('ul', 'shares')
  const shareError = element('p', 'error', { role: 'alert' })
  shareError.hidden = true
  sharing.append(shareForm, shares, shareError)
  controls.append(privacyField, sharing)

  li.append(main, controls)
  entry = { li, title, badge, privacyBadge, duration, views, when, failure, notes, controls, privacy, saved, sharing, shares, shareInput, shareError, sharesLoaded: false, video }
  entries.set(video.id, entry)

  privacy.addEventListener('change', () => changePrivacy(entry, privacy.value))
  shareForm.addEventListener('submit', (e) => {
    e.preventDefault()
    addShare(entry)
  })
  return entry
}

function updateEntry(entry, video) {
  entry.video = video
  const { li } = entry
  li.dataset.state = video.state
  li.dataset.privacy = video.privacy ?? 'public'
  entry.title.textContent = video.title
  entry.badge.dataset.state = video.state
  const busy = video.state === 'uploading' || video.state === 'processing'
  setText(
    entry.badge,
    busy ? 'catalogue.state_progress' : `state.${video.state}`,
    busy ? { state: t(`state.${video.state}`), percent: percent(video.progress) } : undefined,
  )
  entry.privacyBadge.dataset.privacy = video.privacy ?? 'public'
  setText(entry.privacyBadge, `privacy.${video.privacy ?? 'public'}`)
  entry.duration.hidden = !video.duration
  entry.duration.textContent = video.duration ? clock(video.duration) : ''
  entry.views.dataset.count = String(video.views ?? 0)
  setText(entry.views, 'common.views', { count: video.views ?? 0 })
  entry.when.textContent = video.created_at ? date(video.created_at) : ''

  entry.failure.hidden = video.state !== 'failed'
  if (video.state === 'failed') {
    setText(entry.failure, 'account.failed', {
      code: video.error_code ?? 'failed',
      message: video.error_message ?? '',
    })
    entry.failure.dataset.code = video.error_code ?? 'failed'
  }

  const decided = video.moderation ?? []
  entry.notes.hidden = !decided.length
  entry.notes.replaceChildren(
    ...decided.map((m) => {
      const item = element('li', 'moderation-note')
      item.dataset.resolution = m.resolution
      const what = element('strong')
      setText(what, `account.moderation.${m.resolution}`, { reason: t(`report.reason.${m.reason}`) })
      item.append(what)
      if (m.note) {
        const note = element('q', 'moderation-note-text', { dir: 'auto' })
        note.textContent = m.note
        item.append(' ', note)
      }
      if (m.resolved_at) {
        const when = element('span', 'hint')
        when.textContent = ` · ${date(m.resolved_at)}`
        item.append(when)
      }
      return item
    }),
  )

  const gone = video.state === 'deleted'
  entry.controls.hidden = gone
  if (document.activeElement !== entry.privacy) entry.privacy.value = video.privacy ?? 'public'
  const isPrivate = video.privacy === 'private'
  entry.sharing.hidden = gone || !isPrivate
  if (isPrivate && !gone && !entry.sharesLoaded) loadShares(entry)
}

function renderShares(entry, people) {
  entry.shares.replaceChildren(
    ...people.map((person) => {
      const item = element('li')
      item.dataset.handle = person.handle
      const name = element('span', 'share-name')
      const display = element('bdi')
      display.textContent = person.display_name || person.handle
      const handle = element('span', 'hint', { dir: 'ltr' })
      handle.textContent = `@${person.handle}`
      name.append(display, ' ', handle)
      const remove = element('button', 'button small', { type: 'button' })
      setText(remove, 'account.unshare')
      remove.addEventListener('click', () => removeShare(entry, person.handle, remove))
      item.append(name, remove)
      return item
    }),
  )
  entry.shares.hidden = people.length === 0
}

async function loadShares(entry) {
  entry.sharesLoaded = true
  try {
    const { shares } = await listShares(entry.video.id)
    renderShares(entry, shares)
  } catch (err) {
    entry.sharesLoaded = false
    showError(entry.shareError, err)
  }
}

async function addShare(entry) {
  const handle = entry.shareInput.value.trim().replace(/^@/, '')
  if (!HANDLE.test(handle)) {
    showError(entry.shareError, { code: 'bad_handle' })
    return entry.shareInput.focus()
  }
  try {
    const { shares } = await share(entry.video.id, handle)
    renderShares(entry, shares)
    entry.shareInput.value = ''
    showError(entry.shareError, null)
  } catch (err) {
    showError(entry.shareError, err.code === 'not_found' ? { code: 'no_such_account' } : err)
  }
}

async function removeShare(entry, handle, button) {
  button.disabled = true
  try {
    await unshare(entry.video.id, handle)
    showError(entry.shareError, null)
    await loadShares(entry)
  } catch (err) {
    button.disabled = false
    showError(entry.shareError, err)
  }
}

async function changePrivacy(entry, privacy) {
  const before = entry.video.privacy ?? 'public'
  entry.privacy.disabled = true
  entry.saved.textContent = ''
  try {
    const video = await patchVideo(entry.video.id, { privacy })
    updateEntry(entry, { ...entry.video, ...video, moderation: entry.video.moderation })
    setText(entry.saved, 'account.saved')
    showError(entry.shareError, null)
  } catch (err) {
    entry.privacy.value = before
    entry.saved.textContent = ''
    showError(entry.sharing.hidden ? $('account-error') : entry.shareError, err)
  } finally {
    entry.privacy.disabled = false
  }
}

function renderVideos(videos) {
  lastVideos = videos
  const items = videos.map((v) => {
    const entry = videoEntry(v)
    updateEntry(entry, v)
    return entry.li
  })
  const focused = document.activeElement
  list.replaceChildren(...items)
  if (focused && list.contains(focused)) focused.focus({ preventScroll: true })
  for (const id of entries.keys()) if (!videos.some((v) => v.id === id)) entries.delete(id)
  const videosStatus = $('videos-status')
  if (videos.length) setText(videosStatus, 'catalogue.count', { count: videos.length })
  else setText(videosStatus, 'account.no_videos')
  clearTimeout(refreshTimer)
  if (videos.some((v) => ['uploading', 'queued', 'processing'].includes(v.state))) {
    refreshTimer = setTimeout(() => loadVideos(), REFRESH_MS)
  }
}

async function loadVideos() {
  try {
    const { videos } = await myVideos()
    // Signed out while this was on its way: nothing to draw, and no timer to start again.
    if (!account) return
    renderVideos(videos)
  } catch (err) {
    if (!account) return
    if (err.status === 401) return load()
    showError($('account-error'), err)
    clearTimeout(refreshTimer)
    refreshTimer = setTimeout(() => loadVideos(), REFRESH_MS * 2)
  }
}

// ---- signed in: API tokens ------------------------------------------------------------------

async function loadTokens() {
  try {
    const { tokens } = await listTokens()
    renderTokens(tokens)
  } catch (err) {
    showError($('token-error'), err)
  }
}

function renderTokens(tokens) {
  const ul = $('token-list')
  ul.replaceChildren(
    ...tokens.map((token) => {
      const li = element('li')
      li.dataset.id = token.id
      const name = element('span', 'token-name', { dir: 'auto' })
      name.textContent = token.name
      const detail = element('span', 'hint')
      setText(detail, 'account.token_detail', {
        scopes: token.scopes.map((s) => t(`account.scope.${s}`)).join(', '),
        date: date(token.created_at),
      })
      li.append(name, detail)
      if (token.revoked_at) {
        li.dataset.revoked = 'true'
        const badge = element('span', 'badge')
        setText(badge, 'account.token_revoked')
        li.append(badge)
      } else {
        const revoke = element('button', 'button small', { type: 'button' })
        setText(revoke, 'account.token_revoke')
        revoke.addEventListener('click', async () => {
          revoke.disabled = true
          try {
            await revokeToken(token.id)
            showError($('token-error'), null)
            await loadTokens()
          } catch (err) {
            revoke.disabled = false
            showError($('token-error'), err)
          }
        })
        li.append(revoke)
      }
      return li
    }),
  )
  ul.hidden = tokens.length === 0
}

async function submitToken(event) {
  event.preventDefault()
  const error = $('token-error')
  const name = $('token-name').value.trim()
  const scopes = [...document.querySelectorAll('#token-form input[name="scope"]:checked')].map((i) => i.value)
  if (!name) {
    showError(error, { code: 'need_token_name' })
    return $('token-name').focus()
  }
  if (!scopes.length) return showError(error, { code: 'need_scope' })
  const button = $('token-create')
  button.disabled = true
  try {
    const created = await createToken(name, scopes)
    showError(error, null)
    $('new-token').hidden = false
    $('new-token-value').value = created.token
    $('new-token-value').select()
    $('token-name').value = ''
    await loadTokens()
  } catch (err) {
    showError(error, err)
  } finally {
    button.disabled = false
  }
}

async function submitPassword(event) {
  event.preventDefault()
  const error = $('password-error')
  const current = $('password-current')
  const next = $('password-new')
  $('password-done').hidden = true
  if (!current.value || !next.value) {
    showError(error, { code: 'missing_credentials' })
    return (current.value ? next : current).focus()
  }
  const button = $('password-submit')
  button.disabled = true
  try {
    await changePassword(current.value, next.value)
    showError(error, null)
    current.value = ''
    next.value = ''
    $('password-done').hidden = false
  } catch (err) {
    showError(error, err)
  } finally {
    button.disabled = false
  }
}

// ---- the page -------------------------------------------------------------------------------

async function load() {
  let answer
  try {
    answer = await meOrNull()
  } catch (err) {
    status.hidden = false
    setText(status, 'account.load_failed', { code: err.code ?? 'network' })
    return
  }
  if (!answer) return showSignedOut()
  showSignedIn(answer)
  await Promise.all([loadVideos(), loadTokens()])
}

function wire() {
  $('signin-form').addEventListener('submit', submitSignIn)
  $('signup-form').addEventListener('submit', submitSignUp)
  $('token-form').addEventListener('submit', submitToken)
  $('password-form').addEventListener('submit', submitPassword)
  $('new-token-copy').addEventListener('click', async () => {
    const input = $('new-token-value')
    input.select()
    try {
      await navigator.clipboard.writeText(input.value)
      setText($('new-token-copy'), 'account.copied')
    } catch {}
  })
  const leave = (fn) => async () => {
    showError($('account-error'), null)
    try {
      await fn()
    } catch (err) {
      if (err.status !== 401) showError($('account-error'), err)
    }
    entries.clear()
    list.replaceChildren()
    $('new-token').hidden = true
    $('new-token-value').value = ''
    showSignedOut()
    $('signin-handle').focus()
  }
  $('signout').addEventListener('click', leave(signOut))
  $('signout-all').addEventListener('click', leave(signOutEverywhere))
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && account) loadVideos()
  })
  onLanguageChange(() => {
    if (account) {
      renderWho()
      renderVideos(lastVideos)
    } else if (!$('signed-out').hidden) {
      document.title = t('account.document_title_signed_out')
    }
  })
}

async function main() {
  await initI18n()
  mountLanguagePickers()
  refreshNav()
  wire()
  await load()
}

main()
