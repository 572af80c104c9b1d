// The video API, same-origin through the PoP. Every failure becomes an ApiError carrying the
// HTTP status and the server's `{"error": {"code", "message"}}` code, or `network` when no
// answer came at all.
//
// Signed in, the browser holds an HttpOnly session cookie the page never sees; every request
// that changes something must echo the session's anti-forgery token in `x-csrf-token`. The
// token comes with the sign-in answer or from `GET /v1/me`, and is kept here. Who is signed in
// (handle, name, role) is remembered in localStorage as a hint for the header, so pages that
// need no account do not ask for it; any answer that says otherwise corrects it.

const SAFE = ['GET', 'HEAD', 'OPTIONS']
const ACCOUNT_KEY = 'account'

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message || code)
    this.status = status
    this.code = code
    /** Seconds to wait before trying again (`Retry-After`), when the server said. */
    this.retryAfter = retryAfter
  }
}

/** Reads an error response's code, whatever its body. */
export async function errorOf(response) {
  let code = `http_${response.status}`
  let message = response.statusText
  try {
    const body = await response.json()
    if (body?.error?.code) {
      code = body.error.code
      message = body.error.message ?? message
    }
  } catch {}
  const wait = Number(response.headers.get('retry-after'))
  return new ApiError(response.status, code, message, Number.isFinite(wait) && wait > 0 ? wait : null)
}

// ---- the session -------------------------------------------------------------------------

let csrfToken = null
let meInflight = null

/** The account this browser was last seen signed in as ({handle, display_name, role}), or null. */
export function accountHint() {
  try {
    const hint = JSON.parse(localStorage.getItem(ACCOUNT_KEY))
    return hint?.handle ? hint : null
  } catch {
    return null
  }
}

function remember(user, csrf) {
  if (csrf) csrfToken = csrf
  try {
    if (user) {
      const { handle, display_name, role } = user
      localStorage.setItem(ACCOUNT_KEY, JSON.stringify({ handle, display_name, role }))
    } else {
      localStorage.removeItem(ACCOUNT_KEY)
    }
  } catch {}
}

function forget() {
  csrfToken = null
  meInflight = null
  remember(null)
}

/** Whether a role is at least `wanted` (viewer < creator < moderator < admin). */
export function hasRole(role, wanted) {
  const order = ['viewer', 'creator', 'moderator', 'admin']
  return order.indexOf(role) >= order.indexOf(wanted) && order.indexOf(wanted) >= 0
}

async function call(method, path, { body, token, signal, csrfRetry = true } = {}) {
  const headers = { accept: 'application/json' }
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (token) headers.authorization = `Bearer ${token}`
  const unsafe = !SAFE.includes(method)
  if (unsafe && !token) {
    // Probably signed in but the token is not known yet (a new page): ask for it first.
    if (!csrfToken && accountHint()) await me().catch(() => {})
    if (csrfToken) headers['x-csrf-token'] = csrfToken
  }
  let response
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
      credentials: 'same-origin',
    })
  } catch (err) {
    if (err?.name === 'AbortError') throw err
    throw new ApiError(0, 'network', String(err?.message ?? err))
  }
  if (!response.ok) {
    const error = await errorOf(response)
    // A session this page did not know of (signed in in another tab), or a stale token.
    if (error.code === 'csrf' && unsafe && !token && csrfRetry) {
      csrfToken = null
      await me({ fresh: true }).catch(() => {})
      if (csrfToken) return call(method, path, { body, token, signal, csrfRetry: false })
    }
    // The session ended (signed out elsewhere, a password change): what this page remembered
    // of it is wrong now, and `me()` must ask again rather than answer from memory.
    if (error.status === 401 && !token) forget()
    throw error
  }
  if (response.status === 204) return null
  const text = await response.text()
  return text ? JSON.parse(text) : null
}

/**
 * The signed-in account: {user, csrf_token, channels, quota}. Rejects with `401` when nobody is
 * signed in. Concurrent callers share one request; `fresh` asks again.
 */
export function me({ fresh = false } = {}) {
  if (fresh || !meInflight) {
    const asking = call('GET', '/v1/me').then(
      (answer) => {
        remember(answer.user, answer.csrf_token)
        return answer
      },
      (err) => {
        if (err.status === 401) forget()
        if (meInflight === asking) meInflight = null
        throw err
      },
    )
    meInflight = asking
  }
  return meInflight
}

/** The signed-in account, or null when nobody is (other failures still reject). */
export async function meOrNull() {
  try {
    return await me()
  } catch (err) {
    if (err.status === 401) return null
    throw err
  }
}

function signedIn(answer) {
  meInflight = null
  remember(answer.user, answer.csrf_token)
  return answer
}

/** `POST /v1/accounts`: {handle, password, display_name?, email?} → {user, csrf_token}, signed in. */
export async function signUp(fields) {
  return signedIn(await call('POST', '/v1/accounts', { body: fields }))
}

/** `POST /v1/sessions` → {user, csrf_token}, signed in. */
export async function signIn(handle, password) {
  return signedIn(await call('POST', '/v1/sessions', { body: { handle, password } }))
}

/** Signs this browser out (`DELETE /v1/sessions`). */
export async function signOut() {
  try {
    await call('DELETE', '/v1/sessions')
  } finally {
    forget()
  }
}

/**
 * Changes the password (`PUT /v1/me/password`): every other browser is signed out and this
 * one gets a new session, whose anti-forgery token is kept.
 */
export async function changePassword(current, next) {
  return signedIn(await call('PUT', '/v1/me/password', { body: { current, new: next } }))
}

/** Signs every browser of the account out (`DELETE /v1/me/sessions`). */
export async function signOutEverywhere() {
  try {
    return await call('DELETE', '/v1/me/sessions')
  } finally {
    forget()
  }
}

export const myVideos = (signal) => call('GET', '/v1/me/videos', { signal })
export const listTokens = () => call('GET', '/v1/me/tokens')
/** {id, name, scopes, token}: the token is shown this once. */
export const createToken = (name, scopes) => call('POST', '/v1/me/tokens', { body: { name, scopes } })
export const revokeToken = (id) => call('DELETE', `/v1/me/tokens/${encodeURIComponent(id)}`)


/**
 * The PoP answers with absolute URLs under its public name; the page may have been reached
 * under another (127.0.0.1, another port, HTTP/3). Keep the path and query, use ours.
 */
export function rebase(url) {
  if (!url) return url
  const u = new URL(url, location.href)
  return `${location.origin}${u.pathname}${u.search}`
}

/** A video's record; `token` (optional) sees a private video as its owner's API token. */
export const getVideo = (id, signal, token) => call('GET', `/v1/videos/${encodeURIComponent(id)}`, { signal, token })

export function listVideos({ q = '', limit = 48, signal } = {}) {
  const params = new URLSearchParams({ limit: String(limit) })
  if (q) params.set('q', q)
  return call('GET', `/v1/videos?${params}`, { signal })
}

/**
 * `POST /v1/videos`: {title, description?, language?, filename, size, content_type, privacy?,
 * channel?} → {video, upload}. With `token` (an API or creator token) as a bearer token,
 * else as the signed-in account.
 */
export const createVideo = (token, fields) => call('POST', '/v1/videos', { token: token || undefined, body: fields })

/** `PATCH /v1/videos/{id}`: {title?, description?, language?, privacy?}. */
export const patchVideo = (id, fields) => call('PATCH', `/v1/videos/${encodeURIComponent(id)}`, { body: fields })

/** `DELETE /v1/videos/{id}`: takes the video down for good, saying why. */
export const deleteVideo = (id, reason, token) =>
  call('DELETE', `/v1/videos/${encodeURIComponent(id)}`, { body: { reason }, token: token || undefined })

/**
 * A playback grant with its URLs rebased onto this page's origin. Two tokens: `token` rides in
 * every URL the PoP serves; `keyToken` goes only to the key service (`keyUrl`, `licenceUrl`,
 * on its own host), so the PoP never holds anything that fetches a key. `consent`: the viewer
 * confirmed they want to see a video marked sensitive.
 */
export async function playback(id, { consent = false } = {}) {
  const grant = await call('POST', `/v1/videos/${encodeURIComponent(id)}/playback`, {
    body: consent ? { consent: true } : {},
  })
  return {
    token: grant.token,
    keyToken: grant.key_token,
    keyUrl: grant.key_url,
    licenceUrl: grant.licence_url,
    expiresAt: grant.expires_at,
    master: rebase(grant.master_url),
    dash: grant.dash_url ? rebase(grant.dash_url) : null,
    poster: rebase(grant.poster_url),
    storyboard: rebase(grant.storyboard_url),
  }
}

/** `POST /v1/videos/{id}/views` with the delivery token played with: {counted, views}. */
export const reportView = (id, token) => call('POST', `/v1/videos/${encodeURIComponent(id)}/views`, { body: { token } })

/** `POST /v1/videos/{id}/reports`: reason is copyright, illegal, sensitive or spam. */
export const reportVideo = (id, reason, text) =>
  call('POST', `/v1/videos/${encodeURIComponent(id)}/reports`, { body: { reason, text } })

/** Who a video is shared with: {shares: [{handle, display_name}]} (its owner only). */
export const listShares = (id) => call('GET', `/v1/videos/${encodeURIComponent(id)}/shares`)
/** Shares a private video with an account; answers the new list. */
export const share = (id, handle) => call('PUT', `/v1/videos/${encodeURIComponent(id)}/shares/${encodeURIComponent(handle)}`)
export const unshare = (id, handle) =>
  call('DELETE', `/v1/videos/${encodeURIComponent(id)}/shares/${encodeURIComponent(handle)}`)

/** Moderators: the open reports, oldest first, each with its video. */
export const listReports = () => call('GET', '/v1/reports')
/** Moderators: `resolution` is taken_down, gated or dismissed; the note is shown to the creator. */
export const decideReport = (id, resolution, note) =>
  call('POST', `/v1/reports/${encodeURIComponent(id)}/decision`, { body: { resolution, note } })

/** A channel and its public videos: {channel, owner, videos}. */
export const getChannel = (handle, signal) => call('GET', `/v1/channels/${encodeURIComponent(handle)}`, { signal })

/**
 * The URLs a token opens for a video, when the page was handed tokens rather than asking
 * (an embed): the delivery token, and the key token if the embedder gave one.
 */
export function playbackUrls(id, token, keyToken = null) {
  const base = `${location.origin}/p/${encodeURIComponent(token)}/${encodeURIComponent(id)}`
  return {
    token,
    keyToken,
    keyUrl: null,
    licenceUrl: null,
    expiresAt: expiryOf(token),
    master: `${base}/master.m3u8`,
    dash: `${base}/manifest.mpd`,
    poster: `${base}/poster.jpg`,
    storyboard: `${base}/storyboard.vtt`,
  }
}

/** The expiry (Unix seconds) written in a `v2.KID.SCOPE.VIDEO.EXPIRES.VIEWER.SIG` token, if readable. */
export function expiryOf(token) {
  const expires = Number(String(token).split('.')[4])
  return Number.isFinite(expires) ? expires : null
}

/** GETs `url` and returns null when it is fine, or the ApiError it answers with. */
export async function diagnose(url) {
  try {
    const response = await fetch(url, { cache: 'no-store' })
    if (response.ok) {
      response.body?.cancel()
      return null
    }
    return await errorOf(response)
  } catch (err) {
    return new ApiError(0, 'network', String(err?.message ?? err))
  }
}

/**
 * Follows a video's state changes (server-sent events) until it is ready, failed or deleted.
 * `onState` gets each `{video, state, progress, error_code}`. Returns a function that stops.
 */
export function followEvents(id, onState) {
  let source = null
  let stopped = false
  let retry = null
  const stop = () => {
    stopped = true
    clearTimeout(retry)
    source?.close()
  }
  const open = () => {
    if (stopped) return
    source = new EventSource(`/v1/videos/${encodeURIComponent(id)}/events`)
    source.addEventListener('state', (e) => {
      let event
      try {
        event = JSON.parse(e.data)
      } catch {
        return
      }
      if (['ready', 'failed', 'deleted'].includes(event.state)) stop()
      onState(event)
    })
    // Fell behind the server's fan-out: read the state instead.
    source.addEventListener('lagged', () => {
      getVideo(id)
        .then((v) => onState({ video: v.id, state: v.state, progress: v.progress, error_code: v.error_code }))
        .catch(() => {})
    })
    source.addEventListener('error', () => {
      // The browser retries an open stream by itself; one that failed for good is reopened later.
      if (source.readyState === EventSource.CLOSED && !stopped) retry = setTimeout(open, 3000)
    })
  }
  open()
  return stop
}
