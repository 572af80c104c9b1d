// The player: shaka-player with DASH and CENC (cbcs, W3C ClearKey licences from the key
// service) where the browser has EME and MSE; hls.js with AES-128 HLS where it has only MSE
// (checked before native: Chromium also claims native HLS, but cannot play AES-128 fMP4
// natively); the browser's own HLS elsewhere (Safari, iOS, many smart TVs). Custom controls
// work with a mouse, a touch screen, a keyboard and a TV remote's arrows and OK key.

import { clock } from './format.js'
import { formatNumber, setAttrs, t } from './i18n.js'
import { ChoiceMenu, closeOpenMenu } from './menu.js'
import { QualityMenu, ShakaLevels } from './quality.js'
import { cueAt, loadStoryboard, paintCue } from './storyboard.js'

const SEEK_STEP = 10
const VOLUME_STEP = 0.1
const HIDE_AFTER_MS = 3000
const SPEEDS = [0.5, 0.75, 1, 1.25, 1.5, 2]
const PREFS = 'player-prefs'
// How long a PoP that failed under the player stays out of its pathway choices.
const DEAD_HOST_MS = 60_000
// hls.js idle while playback starves: loading is restarted after this long (then after twice
// as long, up to LOADING_KICK_MAX_MS, while playback stays put).
const LOADING_KICK_MS = 3000
const LOADING_KICK_MAX_MS = 30_000

/** Remote-control key codes of TV browsers that send no standard `key`. */
const KEY_CODES = {
  13: 'Enter',
  19: 'MediaPause',
  37: 'ArrowLeft',
  38: 'ArrowUp',
  39: 'ArrowRight',
  40: 'ArrowDown',
  412: 'MediaRewind',
  413: 'MediaStop',
  415: 'MediaPlay',
  417: 'MediaFastForward',
  461: 'GoBack',
  10009: 'GoBack',
  10252: 'MediaPlayPause',
}

function keyOf(e) {
  if (e.key && e.key !== 'Unidentified') return e.key
  return KEY_CODES[e.keyCode] ?? ''
}

/** What this browser can play HLS with: 'hls.js', 'native', or null. */
export function playbackEngine(video) {
  if (window.Hls?.isSupported?.()) return 'hls.js'
  if (video.canPlayType('application/vnd.apple.mpegurl') || video.canPlayType('application/x-mpegURL')) return 'native'
  return null
}

let clearKey = null

/** Whether EME offers W3C ClearKey for CENC in MP4 here (asked once). */
function clearKeyWorks() {
  clearKey ??= (async () => {
    if (!navigator.requestMediaKeySystemAccess || !window.shaka?.Player?.isBrowserSupported?.()) return false
    try {
      await navigator.requestMediaKeySystemAccess('org.w3.clearkey', [
        {
          initDataTypes: ['cenc'],
          videoCapabilities: [{ contentType: 'video/mp4; codecs="avc1.42E01E"' }],
          audioCapabilities: [{ contentType: 'audio/mp4; codecs="mp4a.40.2"' }],
        },
      ])
      return true
    } catch {
      return false
    }
  })()
  return clearKey
}

/**
 * The engine for `source`: DASH + ClearKey with shaka when the source has a manifest and the
 * browser has EME, else HLS (hls.js, then native). `forced` ('dash' or 'hls') narrows it.
 */
async function chooseEngine(video, source, forced) {
  if (forced !== 'hls' && source.dash && (await clearKeyWorks())) return 'shaka'
  return playbackEngine(video)
}

/** Counts hls.js's requests in flight in `requests` (steering reloads aside), and when the last ended. */
function trackRequest(requests, xhr, url) {
  if (url.includes('/v1/steering/')) return
  xhr.addEventListener('loadstart', () => (requests.inFlight += 1))
  xhr.addEventListener('loadend', () => {
    requests.inFlight = Math.max(0, requests.inFlight - 1)
    requests.idleSince = performance.now()
  })
}

function loadPrefs() {
  try {
    return JSON.parse(localStorage.getItem(PREFS)) ?? {}
  } catch {
    return {}
  }
}

function savePrefs(prefs) {
  try {
    localStorage.setItem(PREFS, JSON.stringify(prefs))
  } catch {}
}

export class Player {
  /**
   * @param root    the `.player` element
   * @param onFatal called with {kind, url, status, details} when playback cannot go on
   */
  constructor(root, { onFatal }) {
    this.root = root
    this.onFatal = onFatal
    this.video = root.querySelector('video')
    const $ = (id) => root.querySelector(`#${id}`)
    this.el = {
      spinner: $('spinner'),
      bigPlay: $('big-play'),
      unmute: $('unmute'),
      toast: $('toast'),
      controls: $('controls'),
      row: $('controls-row'),
      seek: $('seek'),
      buffered: $('seek-buffered'),
      played: $('seek-played'),
      handle: $('seek-handle'),
      preview: $('preview'),
      previewImage: $('preview-image'),
      previewTime: $('preview-time'),
      play: $('play'),
      back: $('back'),
      forward: $('forward'),
      mute: $('mute'),
      volume: $('volume'),
      current: $('current'),
      duration: $('duration'),
      speedButton: $('speed-button'),
      speedLabel: $('speed-label'),
      fullscreen: $('fullscreen'),
      keysButton: $('keys-button'),
    }
    this.hls = null
    this.shaka = null
    this.engine = null
    this.cues = []
    this.pendingSeek = null
    this.hideTimer = null
    this.renewTimer = null
    this.knownDuration = 0
    this.recoveries = 0
    this.prefs = loadPrefs()
    this.quality = new QualityMenu($('quality-button'), $('quality-menu'), $('quality-label'))
    this.speed = new ChoiceMenu(this.el.speedButton, $('speed-menu'), (v) => this.setSpeed(Number(v)))
    this.wire()
    this.renderSpeeds()
    this.updateVolume()
  }

  // ---- loading -------------------------------------------------------------------------

  /**
   * Plays `source` ({master, poster, storyboard, token, expiresAt, renew, duration}).
   * `renew()` resolves to a fresh grant; it keeps a long session going past its token.
   */
  async load(source, { startAt = 0, autoplay = true, engine = null } = {}) {
    this.unload()
    this.source = source
    this.baseToken = source.token
    this.token = source.token
    this.keyToken = source.keyToken
    this.knownDuration = source.duration ?? 0
    this.engine = await chooseEngine(this.video, source, engine)
    if (this.source !== source) return
    this.root.dataset.engine = this.engine ?? 'none'
    this.root.hidden = false
    this.root.classList.add('is-paused')
    this.root.classList.remove('is-ended', 'is-started')
    if (source.poster) this.video.poster = source.poster
    this.spinner(true)
    this.scheduleRenewal()
    loadStoryboard(source.storyboard).then((cues) => {
      if (this.source === source) this.cues = cues
    })

    if (this.engine === 'shaka') {
      await this.loadShaka(source, startAt, autoplay)
    } else if (this.engine === 'hls.js') {
      const requests = { inFlight: 0, idleSince: performance.now() }
      const hls = new window.Hls({
        // Every request goes out with the newest token, so renewals need no reload. Key
        // requests go to the key service with the key token, which no PoP ever sees.
        xhrSetup: (xhr, url) => {
          trackRequest(requests, xhr, url)
          if (this.isKeyService(url)) {
            xhr.open('GET', url, true)
            if (this.keyToken) xhr.setRequestHeader('Authorization', `Bearer ${this.keyToken}`)
            return
          }
          const current = this.withToken(url)
          if (current !== url) xhr.open('GET', current, true)
        },
        // Auto quality never fetches more pixels than the player shows.
        capLevelToPlayerSize: true,
        startLevel: -1,
        startPosition: startAt > 0 ? startAt : -1,
        maxBufferLength: 30,
        backBufferLength: 30,
        enableWorker: true,
      })
      this.hls = hls
      const E = window.Hls.Events
      hls.on(E.MANIFEST_PARSED, () => {
        this.quality.attach(hls)
        if (autoplay) this.play()
      })
      hls.on(E.LEVEL_SWITCHED, (_, data) => {
        this.root.dataset.level = String(hls.levels[data.level]?.height ?? '')
        this.quality.switched()
      })
      // A PoP that fails at the network level is left at once for the next pathway content
      // steering names, and kept out for a while: on its own hls.js retries a dead host for
      // up to half a minute before it moves, while the buffer drains.
      this.deadHosts = new Map()
      this.pathwayHosts = new Map()
      hls.on(E.ERROR, (_, data) => {
        this.leavePathway(hls, data)
        this.hlsError(data)
      })
      hls.on(E.STEERING_MANIFEST_LOADED, (_, { steeringManifest }) => {
        for (const clone of steeringManifest?.['PATHWAY-CLONES'] ?? []) {
          const host = clone['URI-REPLACEMENT']?.HOST
          if (host) this.pathwayHosts.set(clone.ID, host)
        }
        // A reload may name the dead PoP first again until the origin notices it is gone. The
        // order is fixed in place, before hls.js applies it (it reads this same array after the
        // event): applied first and corrected after, the player would flap back to the dead PoP.
        const priority = steeringManifest?.['PATHWAY-PRIORITY']
        this.demoteDead(priority)
        this.onePathwayPerHost(priority, hls.levels?.[0]?.pathwayId)
      })
      hls.attachMedia(this.video)
      hls.loadSource(source.master)
      this.watchLoading(hls, requests)
    } else if (this.engine === 'native') {
      this.quality.button.hidden = true
      this.video.src = source.master
      if (startAt > 0) {
        this.video.addEventListener('loadedmetadata', () => (this.video.currentTime = startAt), { once: true })
      }
      if (autoplay) this.play()
    } else {
      this.fatal({ kind: 'unsupported' })
    }
  }

  /** DASH with CENC: licences from the key service, with the key token as a bearer token. */
  async loadShaka(source, startAt, autoplay) {
    const shaka = window.shaka
    shaka.polyfill.installAll()
    const player = new shaka.Player()
    this.shaka = player
    await player.attach(this.video)
    player.configure({
      drm: source.licenceUrl ? { servers: { 'org.w3.clearkey': source.licenceUrl } } : {},
      abr: { enabled: true, restrictToElementSize: true },
      streaming: { bufferingGoal: 30, bufferBehind: 30 },
    })
    const LICENSE = shaka.net.NetworkingEngine.RequestType.LICENSE
    player.getNetworkingEngine().registerRequestFilter((type, request) => {
      if (type === LICENSE) {
        if (this.keyToken) request.headers.Authorization = `Bearer ${this.keyToken}`
      } else {
        request.uris = request.uris.map((u) => this.withToken(u))
      }
    })
    player.addEventListener('error', (e) => this.shakaError(e.detail))
    const switched = () => {
      const active = player.getVariantTracks().find((t) => t.active)
      this.root.dataset.level = String(active?.height ?? '')
      this.quality.switched()
    }
    player.addEventListener('adaptation', switched)
    player.addEventListener('variantchanged', switched)
    try {
      await player.load(source.dash, startAt > 0 ? startAt : null)
    } catch (err) {
      if (this.shaka === player) this.shakaError(err)
      return
    }
    if (this.shaka !== player) return
    this.quality.attach(new ShakaLevels(player))
    switched()
    if (autoplay) this.play()
  }

  shakaError(error) {
    if (!this.shaka || error?.severity === 1) return
    const shaka = window.shaka
    // An HTTP failure (or a licence request that failed with one) names its URL and status.
    const http = error?.code === shaka.util.Error.Code.BAD_HTTP_STATUS ? error : error?.data?.[0]
    const httpFailed = http?.code === shaka.util.Error.Code.BAD_HTTP_STATUS
    const network = error?.category === shaka.util.Error.Category.NETWORK || httpFailed
    const url = httpFailed && !this.isKeyService(http.data[0]) ? http.data[0] : this.source.dash
    this.fatal({
      kind: network ? 'network' : 'media',
      url: this.withToken(url),
      status: httpFailed ? http.data[1] : 0,
      details: `shaka ${error?.code ?? error}`,
    })
  }

  /** Whether `url` is the key service's (keys and licences): it takes the key token. */
  isKeyService(url) {
    const { keyUrl, licenceUrl } = this.source ?? {}
    if (keyUrl && (url.startsWith(keyUrl) || url.startsWith(licenceUrl))) return true
    try {
      return new URL(url, location.href).pathname.startsWith('/v1/keys/')
    } catch {
      return false
    }
  }

  /** Stops and forgets the current video (the element stays for the next one). */
  unload() {
    clearTimeout(this.renewTimer)
    clearInterval(this.loadingWatch)
    this.hls?.destroy()
    this.hls = null
    this.shaka?.destroy()
    this.shaka = null
    this.cues = []
    this.video.removeAttribute('src')
    this.video.load()
  }

  withToken(url) {
    if (!this.baseToken || this.token === this.baseToken) return url
    return url.replace(`/p/${this.baseToken}/`, `/p/${this.token}/`)
  }

  scheduleRenewal() {
    clearTimeout(this.renewTimer)
    const { renew } = this.source
    const expiresAt = this.source.currentExpiry ?? this.source.expiresAt
    if (!renew || !expiresAt) return
    // Two minutes before expiry, at least five seconds from now; timers cap at ~24 days.
    const wait = Math.min(Math.max((expiresAt - Date.now() / 1000 - 120) * 1000, 5000), 2 ** 31 - 1)
    this.renewTimer = setTimeout(async () => {
      try {
        const grant = await renew()
        this.token = grant.token
        this.keyToken = grant.keyToken ?? this.keyToken
        this.source.currentExpiry = grant.expiresAt
      } catch {
        // Try again shortly; if the token does lapse, the error page offers a new one.
        this.source.currentExpiry = Date.now() / 1000 + 150
      }
      this.scheduleRenewal()
    }, wait)
  }

  /** After a network failure (no answer, 502, 504): the host that failed is dead for a while. */
  leavePathway(hls, data) {
    if (data.fatal || data.type !== window.Hls.ErrorTypes.NETWORK_ERROR) return
    // hls.js cancelling its own request (a pathway or level switch, a seek) says nothing about
    // the PoP: it comes as a network error with no status too.
    if (data.details === window.Hls.ErrorDetails.INTERNAL_ABORTED) return
    // No answer, or a PoP that says its own upstream failed; a 503 is the origin busy making
    // the object, which another PoP would wait for too.
    const status = data.response?.code ?? 0
    if (status !== 0 && status !== 502 && status !== 504) return
    const url = data.frag?.url ?? data.url ?? data.context?.url
    if (!url) return
    try {
      this.deadHosts.set(new URL(url, location.href).hostname, performance.now())
    } catch {
      return
    }
    this.avoidDeadHosts(hls)
  }

  /** The host name a pathway's media comes from: its clone's, or the multivariant playlist's. */
  pathwayHost(pathway) {
    return this.pathwayHosts.get(pathway) ?? new URL(this.source.master, location.href).hostname
  }

  /** Whether a pathway's host failed lately (forgetting failures older than DEAD_HOST_MS). */
  isDead(pathway) {
    const now = performance.now()
    for (const [host, at] of this.deadHosts) {
      if (now - at > DEAD_HOST_MS) this.deadHosts.delete(host)
    }
    return this.deadHosts.has(this.pathwayHost(pathway))
  }

  /** `priority` reordered in place: the live pathways first, the dead ones last; whether it changed. */
  demoteDead(priority) {
    if (!Array.isArray(priority) || !priority.length) return false
    const alive = priority.filter((p) => !this.isDead(p))
    if (!alive.length || alive.length === priority.length) return false
    priority.splice(0, priority.length, ...alive, ...priority.filter((p) => this.isDead(p)))
    return true
  }

  /**
   * `priority` reordered in place to name each host once, where its first pathway stood: by
   * the current pathway if that is one of the host's, else by the first. Two pathways to one
   * host are one PoP (steering names the PoP that served the playlist as a clone and as `home`),
   * but to hls.js a move between them is a switch of every level and of the audio group: it
   * drops what is loading and loads audio again from the playhead (appending what is already
   * buffered), and hls.js 1.7 can stop loading for good in such a switch. Named once, a PoP is
   * never left for itself, and a dead one is left in one switch, not two.
   */
  onePathwayPerHost(priority, current) {
    if (!Array.isArray(priority) || priority.length < 2) return
    const byHost = new Map()
    for (const pathway of priority) {
      const host = this.pathwayHost(pathway)
      const chosen = byHost.get(host)
      if (chosen === undefined || (pathway === current && chosen !== current)) byHost.set(host, pathway)
    }
    const once = [...new Set(priority.map((pathway) => byHost.get(this.pathwayHost(pathway))))]
    if (once.length !== priority.length) priority.splice(0, priority.length, ...once)
  }

  /** When the current pathway's host failed lately: the live pathways first, the dead ones last. */
  avoidDeadHosts(hls) {
    const current = hls.levels[0]?.pathwayId
    const priority = [...(hls.pathwayPriority ?? hls.pathways ?? [])]
    if (current && this.isDead(current) && this.demoteDead(priority)) {
      this.onePathwayPerHost(priority, current)
      hls.pathwayPriority = priority
    }
  }

  /**
   * Restarts hls.js's loading where playback stands when it has been starved (playing, not
   * seeking, nothing buffered ahead) for LOADING_KICK_MS with no request in flight for as
   * long. hls.js 1.7 can leave a stream controller idle for good after a pathway switch (an
   * aborted load it never makes again, a fragment dropped because level details were reset):
   * the viewer would wait forever. A request in flight, however slow, is left to hls.js's own
   * timeouts, which is how it finds out that a PoP is gone.
   */
  watchLoading(hls, requests) {
    const v = this.video
    let time = -1
    let since = performance.now()
    let kicks = 0
    clearInterval(this.loadingWatch)
    this.loadingWatch = setInterval(() => {
      if (this.hls !== hls) return
      const now = performance.now()
      if (v.currentTime !== time) {
        time = v.currentTime
        since = now
        kicks = 0
      }
      const d = this.duration()
      const starved = !v.paused && !v.ended && !v.seeking && this.bufferedAhead() < 0.5 && !(d && time > d - 0.5)
      if (!starved) {
        since = now
        return
      }
      const wait = Math.min(LOADING_KICK_MS * 2 ** kicks, LOADING_KICK_MAX_MS)
      const idle = requests.inFlight > 0 ? 0 : now - requests.idleSince
      if (now - since < wait || idle < wait || !hls.levels?.length) return
      kicks += 1
      since = now
      console.warn(`player: starved at ${time.toFixed(2)} s with nothing loading; loading again (${kicks})`)
      hls.startLoad(time, true)
    }, 1000)
  }

  /** Seconds buffered ahead of the playhead. */
  bufferedAhead() {
    const v = this.video
    for (let i = 0; i < v.buffered.length; i++) {
      if (v.buffered.start(i) <= v.currentTime + 0.1 && v.currentTime < v.buffered.end(i)) {
        return v.buffered.end(i) - v.currentTime
      }
    }
    return 0
  }

  hlsError(data) {
    if (!data.fatal) return
    const Hls = window.Hls
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR && this.recoveries < 2) {
      this.recoveries += 1
      this.hls.recoverMediaError()
      return
    }
    const url = data.url ?? data.frag?.url ?? data.context?.url ?? data.networkDetails?.responseURL ?? null
    this.fatal({
      kind: data.type === Hls.ErrorTypes.NETWORK_ERROR ? 'network' : 'media',
      url: url ? this.withToken(url) : this.withToken(this.source.master),
      status: data.response?.code ?? 0,
      details: data.details,
    })
  }

  fatal(error) {
    this.position = this.video.currentTime
    this.spinner(false)
    this.unload()
    this.root.hidden = true
    this.onFatal(error)
  }

  // ---- actions -------------------------------------------------------------------------

  async play() {
    const v = this.video
    if (this.prefs.muted === false && v.muted) v.muted = false
    try {
      await v.play()
    } catch (err) {
      if (err?.name !== 'NotAllowedError') return
      // Sound needs a gesture first: start muted and offer to unmute.
      if (!v.muted) {
        v.muted = true
        try {
          await v.play()
        } catch {
          this.spinner(false)
          return
        }
      } else {
        this.spinner(false)
        return
      }
    }
    this.el.unmute.hidden = !v.muted
  }

  togglePlay() {
    if (this.video.paused || this.video.ended) this.play()
    else this.video.pause()
  }

  duration() {
    const d = this.video.duration
    return Number.isFinite(d) && d > 0 ? d : this.knownDuration
  }

  seekTo(time) {
    const d = this.duration()
    const target = Math.max(0, Math.min(d ? d - 0.1 : time, time))
    this.pendingSeek = target
    this.video.currentTime = target
    this.updateTime()
  }

  seekBy(delta) {
    const from = this.pendingSeek ?? this.video.currentTime
    this.seekTo(from + delta)
    this.flash(delta > 0 ? `+${formatNumber(delta)}s` : `−${formatNumber(-delta)}s`)
  }

  setVolume(volume) {
    const v = this.video
    v.volume = Math.round(Math.max(0, Math.min(1, volume)) * 100) / 100
    if (v.volume > 0 && v.muted) v.muted = false
    this.rememberVolume()
    this.flash(t('player.volume_at', { percent: Math.round(v.volume * 100) }))
  }

  toggleMute() {
    this.video.muted = !this.video.muted
    if (!this.video.muted && this.video.volume === 0) this.video.volume = 0.5
    this.rememberVolume()
  }

  setSpeed(rate) {
    this.video.playbackRate = rate
    this.renderSpeeds()
  }

  renderSpeeds() {
    const rate = this.video.playbackRate
    const label = (r) => `${formatNumber(r)}×`
    this.speed.setItems(
      SPEEDS.map((r) => ({ value: r, label: r === 1 ? t('player.speed_normal') : label(r), checked: r === rate })),
    )
    this.el.speedLabel.textContent = label(rate)
    this.el.speedButton.setAttribute('aria-label', t('player.speed_label', { speed: label(rate) }))
    this.el.speedButton.title = t('player.speed')
  }

  async toggleFullscreen() {
    const doc = document
    try {
      if (doc.fullscreenElement || doc.webkitFullscreenElement) {
        await (doc.exitFullscreen ?? doc.webkitExitFullscreen).call(doc)
      } else if (this.root.requestFullscreen || this.root.webkitRequestFullscreen) {
        await (this.root.requestFullscreen ?? this.root.webkitRequestFullscreen).call(this.root)
        // Phones: turn to landscape where the browser allows it.
        screen.orientation?.lock?.('landscape').catch(() => {})
      } else if (this.video.webkitEnterFullscreen) {
        this.video.webkitEnterFullscreen()
      }
    } catch {}
  }

  // ---- display -------------------------------------------------------------------------

  spinner(on) {
    this.el.spinner.hidden = !on
    this.root.classList.toggle('is-waiting', on)
  }

  flash(text) {
    const toast = this.el.toast
    toast.textContent = text
    toast.hidden = false
    clearTimeout(this.flashTimer)
    this.flashTimer = setTimeout(() => (toast.hidden = true), 900)
  }

  updatePlayState() {
    const v = this.video
    const playing = !v.paused && !v.ended
    this.root.classList.toggle('is-paused', !playing)
    this.root.classList.toggle('is-ended', v.ended)
    const key = v.ended ? 'player.replay' : playing ? 'player.pause' : 'player.play'
    setAttrs(this.el.play, { 'aria-label': key, title: key })
    setAttrs(this.el.bigPlay, { 'aria-label': key })
    this.showControls()
  }

  updateTime() {
    const d = this.duration()
    const now = this.pendingSeek ?? this.video.currentTime
    const fraction = d ? Math.min(1, now / d) : 0
    this.el.current.textContent = clock(now)
    this.el.duration.textContent = clock(d)
    this.el.played.style.width = `${fraction * 100}%`
    this.placeOnBar(this.el.handle, fraction)
    const seek = this.el.seek
    seek.setAttribute('aria-valuemax', String(Math.round(d)))
    seek.setAttribute('aria-valuenow', String(Math.round(now)))
    seek.setAttribute('aria-valuetext', t('player.time_of', { current: clock(now), duration: clock(d) }))
  }

  updateBuffered() {
    const v = this.video
    const d = this.duration()
    let end = 0
    for (let i = 0; i < v.buffered.length; i++) {
      if (v.buffered.start(i) <= v.currentTime + 0.5) end = Math.max(end, v.buffered.end(i))
    }
    this.el.buffered.style.width = `${d ? Math.min(100, (end / d) * 100) : 0}%`
  }

  updateVolume() {
    const v = this.video
    const silent = v.muted || v.volume === 0
    this.root.classList.toggle('is-muted', silent)
    this.el.volume.value = String(v.muted ? 0 : v.volume)
    const key = silent ? 'player.unmute_short' : 'player.mute'
    setAttrs(this.el.mute, { 'aria-label': key, title: key })
    if (!v.muted) this.el.unmute.hidden = true
  }

  /** Remembers what the viewer chose (not what autoplay rules forced). */
  rememberVolume() {
    this.prefs = { volume: this.video.volume, muted: this.video.muted }
    savePrefs(this.prefs)
  }

  /** Positions `el` at `fraction` of the bar. */
  placeOnBar(el, fraction) {
    el.style.left = `${fraction * 100}%`
  }

  showControls() {
    this.root.classList.remove('controls-hidden')
    clearTimeout(this.hideTimer)
    this.hideTimer = setTimeout(() => {
      const v = this.video
      const menuOpen = this.root.querySelector('[role="menu"]:not([hidden])')
      if (!v.paused && !v.ended && !menuOpen && !this.scrubbing) this.root.classList.add('controls-hidden')
    }, HIDE_AFTER_MS)
  }

  // ---- seek bar ------------------------------------------------------------------------

  fractionAt(clientX) {
    const box = this.el.seek.getBoundingClientRect()
    return Math.max(0, Math.min(1, (clientX - box.left) / box.width))
  }

  showPreview(fraction) {
    const d = this.duration()
    if (!d) return
    const time = fraction * d
    const { preview, previewImage, previewTime, seek } = this.el
    preview.hidden = false
    previewTime.textContent = clock(time)
    const cue = cueAt(this.cues, time)
    previewImage.hidden = !cue
    paintCue(previewImage, cue)
    // Keep the box inside the bar.
    const width = seek.clientWidth
    const half = preview.offsetWidth / 2
    preview.style.left = `${Math.max(half, Math.min(width - half, fraction * width))}px`
  }

  hidePreview() {
    this.el.preview.hidden = true
  }

  // ---- wiring --------------------------------------------------------------------------

  wire() {
    const v = this.video
    const el = this.el
    v.addEventListener('play', () => this.updatePlayState())
    v.addEventListener('pause', () => this.updatePlayState())
    v.addEventListener('ended', () => this.updatePlayState())
    v.addEventListener('playing', () => {
      this.spinner(false)
      this.root.classList.add('is-started')
      this.updatePlayState()
    })
    v.addEventListener('waiting', () => this.spinner(true))
    v.addEventListener('seeking', () => !v.paused && this.spinner(true))
    v.addEventListener('seeked', () => {
      this.pendingSeek = null
      if (v.paused) this.spinner(false)
      this.updateTime()
    })
    v.addEventListener('canplay', () => v.paused && this.spinner(false))
    v.addEventListener('loadedmetadata', () => this.updateTime())
    v.addEventListener('durationchange', () => this.updateTime())
    v.addEventListener('timeupdate', () => {
      this.updateTime()
      this.updateBuffered()
    })
    v.addEventListener('progress', () => this.updateBuffered())
    v.addEventListener('volumechange', () => this.updateVolume())
    v.addEventListener('ratechange', () => this.renderSpeeds())
    v.addEventListener('error', () => {
      // hls.js reports its own errors; this is native HLS (or a dead element).
      if (this.engine === 'native' && v.error) {
        this.fatal({ kind: 'media', url: this.source.master, details: `media error ${v.error.code}` })
      }
    })
    if (this.prefs.volume !== undefined) v.volume = this.prefs.volume

    el.play.addEventListener('click', () => this.togglePlay())
    el.bigPlay.addEventListener('click', () => this.togglePlay())
    el.back.addEventListener('click', () => this.seekBy(-SEEK_STEP))
    el.forward.addEventListener('click', () => this.seekBy(SEEK_STEP))
    el.mute.addEventListener('click', () => this.toggleMute())
    el.unmute.addEventListener('click', () => {
      v.muted = false
      if (v.volume === 0) v.volume = 1
      this.rememberVolume()
    })
    el.volume.addEventListener('input', () => {
      v.volume = Number(el.volume.value)
      v.muted = v.volume === 0
      this.rememberVolume()
    })
    el.fullscreen.addEventListener('click', () => this.toggleFullscreen())
    const fullscreenChanged = () => {
      const on = Boolean(document.fullscreenElement || document.webkitFullscreenElement)
      this.root.classList.toggle('is-fullscreen', on)
      const key = on ? 'player.exit_fullscreen' : 'player.fullscreen'
      setAttrs(el.fullscreen, { 'aria-label': key, title: key })
    }
    document.addEventListener('fullscreenchange', fullscreenChanged)
    document.addEventListener('webkitfullscreenchange', fullscreenChanged)

    // Clicking the picture plays or pauses; on touch screens the first tap shows the controls.
    v.addEventListener('pointerup', (e) => {
      if (e.pointerType === 'touch' && this.root.classList.contains('controls-hidden')) {
        this.showControls()
        return
      }
      this.togglePlay()
    })
    v.addEventListener('dblclick', () => this.toggleFullscreen())
    this.root.addEventListener('pointermove', () => this.showControls())
    this.root.addEventListener('focusin', () => this.showControls())

    // The seek bar: hover shows the storyboard, drag scrubs, release seeks.
    const seek = el.seek
    seek.addEventListener('pointermove', (e) => {
      const f = this.fractionAt(e.clientX)
      this.showPreview(f)
      if (this.scrubbing) {
        this.pendingSeek = f * this.duration()
        this.updateTime()
      }
    })
    seek.addEventListener('pointerleave', () => !this.scrubbing && this.hidePreview())
    seek.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return
      this.scrubbing = true
      seek.setPointerCapture(e.pointerId)
      this.pendingSeek = this.fractionAt(e.clientX) * this.duration()
      this.updateTime()
      this.showPreview(this.fractionAt(e.clientX))
    })
    const release = (e) => {
      if (!this.scrubbing) return
      this.scrubbing = false
      this.seekTo(this.fractionAt(e.clientX) * this.duration())
      if (e.pointerType !== 'mouse') this.hidePreview()
    }
    seek.addEventListener('pointerup', release)
    seek.addEventListener('pointercancel', () => {
      this.scrubbing = false
      this.pendingSeek = null
      this.hidePreview()
    })
    seek.addEventListener('blur', () => this.hidePreview())

    this.root.addEventListener('keydown', (e) => this.key(e))
  }

  /** Keys, for keyboards and remotes alike. */
  key(e) {
    if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey) return
    const key = keyOf(e)
    const target = e.target
    const inRow = this.el.row.contains(target)
    const onSeek = target === this.el.seek
    const onRange = target === this.el.volume
    const onButton = target.closest?.('button') && target !== this.root
    const d = this.duration()
    this.showControls()
    const handled = () => {
      e.preventDefault()
      e.stopPropagation()
    }

    switch (key) {
      case ' ':
      case 'Enter':
        if (onButton) return // the button's own action
        this.togglePlay()
        return handled()
      case 'k':
      case 'K':
      case 'MediaPlayPause':
        this.togglePlay()
        return handled()
      case 'MediaPlay':
        this.play()
        return handled()
      case 'MediaPause':
      case 'MediaStop':
        this.video.pause()
        return handled()
      case 'ArrowLeft':
      case 'ArrowRight': {
        if (onRange) return // the volume slider's own arrows
        // Playback controls keep their left-to-right layout in every language (the
        // direction of time, not of text), so right is always forward.
        const forward = key === 'ArrowRight'
        if (inRow) {
          this.moveInRow(target, forward ? 1 : -1)
          return handled()
        }
        this.seekBy((forward ? 1 : -1) * SEEK_STEP)
        if (onSeek) this.showPreview(d ? (this.pendingSeek ?? 0) / d : 0)
        return handled()
      }
      case 'j':
      case 'J':
      case 'MediaRewind':
        this.seekBy(-SEEK_STEP)
        return handled()
      case 'l':
      case 'L':
      case 'MediaFastForward':
        this.seekBy(SEEK_STEP)
        return handled()
      case 'PageUp':
      case 'PageDown':
        if (!onSeek) return
        this.seekBy(key === 'PageUp' ? 60 : -60)
        return handled()
      case 'ArrowUp':
        if (onSeek) {
          this.root.focus()
          return handled()
        }
        if (inRow) {
          this.el.seek.focus()
          return handled()
        }
        this.setVolume(this.video.volume + VOLUME_STEP)
        return handled()
      case 'ArrowDown':
        if (onSeek) {
          this.el.play.focus()
          return handled()
        }
        if (inRow) {
          this.root.focus()
          return handled()
        }
        this.setVolume(this.video.volume - VOLUME_STEP)
        return handled()
      case 'Home':
        this.seekTo(0)
        return handled()
      case 'End':
        this.seekTo(d)
        return handled()
      case 'm':
      case 'M':
        this.toggleMute()
        return handled()
      case 'f':
      case 'F':
        this.toggleFullscreen()
        return handled()
      case '?':
        this.el.keysButton.click()
        return handled()
      case 'Escape':
      case 'GoBack':
        if (closeOpenMenu()) return handled()
        return
      default:
        if (/^[0-9]$/.test(key) && d) {
          this.seekTo((Number(key) / 10) * d)
          return handled()
        }
    }
  }

  /** Moves the focus to the next or previous visible control of the row. */
  moveInRow(from, step) {
    const items = [...this.el.row.querySelectorAll('button, input')].filter(
      (el) => !el.hidden && !el.closest('[hidden]') && el.getClientRects().length > 0 && !el.closest('[role="menu"]'),
    )
    const at = items.indexOf(from.closest('button, input') ?? from)
    const next = items[Math.max(0, Math.min(items.length - 1, at + step))]
    next?.focus()
  }

  /** Re-renders the texts that are not plain translated elements. */
  relabel() {
    this.renderSpeeds()
    this.quality.render()
    this.updatePlayState()
    this.updateVolume()
    this.updateTime()
  }
}
