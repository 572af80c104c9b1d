// The video API, same-origin through the PoP. Every failure becomes an ApiError carrying the
// HTTP status and the server's `{"error": {"code", "message"}}` code, or `network` when no
// answer came at all.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code)
    this.status = status
    this.code = code
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
  return new ApiError(response.status, code, message)
}

async function call(method, path, { body, token, signal } = {}) {
  const headers = { accept: 'application/json' }
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (token) headers.authorization = `Bearer ${token}`
  let response
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
    })
  } catch (err) {
    if (err?.name === 'AbortError') throw err
    throw new ApiError(0, 'network', String(err?.message ?? err))
  }
  if (!response.ok) throw await errorOf(response)
  return response.json()
}

/**
 * The PoP answers with absolute URLs under its public name; the page may have been reached
 * under another (127.0.0.1, another port, HTTP/3). Keep the path and query, use ours.
 */
export function rebase(url) {
  if (!url) return url
  const u = new URL(url, location.href)
  return `${location.origin}${u.pathname}${u.search}`
}

export const getVideo = (id, signal) => call('GET', `/v1/videos/${encodeURIComponent(id)}`, { signal })

export function listVideos({ q = '', limit = 48, signal } = {}) {
  const params = new URLSearchParams({ limit: String(limit) })
  if (q) params.set('q', q)
  return call('GET', `/v1/videos?${params}`, { signal })
}

export const createVideo = (token, fields) => call('POST', '/v1/videos', { token, body: fields })

/**
 * A playback grant with its URLs rebased onto this page's origin. Two tokens: `token` rides in
 * every URL the PoP serves; `keyToken` goes only to the key service (`keyUrl`, `licenceUrl`,
 * on its own host), so the PoP never holds anything that fetches a key.
 */
export async function playback(id) {
  const grant = await call('POST', `/v1/videos/${encodeURIComponent(id)}/playback`, { body: {} })
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
