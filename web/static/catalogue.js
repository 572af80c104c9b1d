// /: the catalogue. A search box (debounced, kept in the address as `?q=`), a grid of cards
// with poster thumbnails, titles in any script, each video's state and, while it is being
// uploaded or processed, its progress, refreshed until it settles.

import { listVideos, playback } from './api.js'
import { clock, date, percent } from './format.js'
import { initI18n, mountLanguagePickers, onLanguageChange, setText, t } from './i18n.js'
import { arrowNavigation } from './spatial.js'

const DEBOUNCE_MS = 250
const REFRESH_MS = 4000
const POSTER_CONCURRENCY = 4
const POSTER_CACHE = 'poster:'

const search = document.getElementById('search')
const grid = document.getElementById('videos')
const status = document.getElementById('status')
const cards = new Map()
let query = new URLSearchParams(location.search).get('q') ?? ''
let inflight = null
let refreshTimer = null
let lastVideos = []

// ---- posters: one playback grant per ready video, a few at a time, remembered per tab ----

const posterQueue = []
let postersRunning = 0

function cachedPoster(id) {
  try {
    const hit = JSON.parse(sessionStorage.getItem(POSTER_CACHE + id))
    if (hit && hit.expiresAt * 1000 > Date.now() + 60_000) return hit.url
  } catch {}
  return null
}

function wantPoster(id, img) {
  const cached = cachedPoster(id)
  if (cached) return showPoster(img, cached)
  posterQueue.push([id, img])
  pumpPosters()
}

function pumpPosters() {
  while (postersRunning < POSTER_CONCURRENCY && posterQueue.length) {
    const [id, img] = posterQueue.shift()
    postersRunning += 1
    playback(id)
      .then((grant) => {
        try {
          sessionStorage.setItem(POSTER_CACHE + id, JSON.stringify({ url: grant.poster, expiresAt: grant.expiresAt }))
        } catch {}
        showPoster(img, grant.poster)
      })
      .catch(() => {})
      .finally(() => {
        postersRunning -= 1
        pumpPosters()
      })
  }
}

function showPoster(img, url) {
  if (img.src === url) return
  img.addEventListener('load', () => (img.dataset.loaded = ''), { once: true })
  img.src = url
}

// ---- cards -------------------------------------------------------------------------------

function card(video) {
  let entry = cards.get(video.id)
  if (!entry) {
    const li = document.createElement('li')
    const a = document.createElement('a')
    a.className = 'card'
    a.href = `/watch/${encodeURIComponent(video.id)}`
    a.dataset.id = video.id
    const thumb = document.createElement('div')
    thumb.className = 'thumb'
    const img = document.createElement('img')
    img.alt = ''
    img.loading = 'lazy'
    img.decoding = 'async'
    const duration = document.createElement('span')
    duration.className = 'thumb-duration'
    duration.dir = 'ltr'
    const bar = document.createElement('progress')
    bar.max = 1
    thumb.append(img, duration, bar)
    const body = document.createElement('div')
    body.className = 'card-body'
    const title = document.createElement('h2')
    title.className = 'card-title'
    title.dir = 'auto'
    const meta = document.createElement('div')
    meta.className = 'card-meta'
    const badge = document.createElement('span')
    badge.className = 'badge'
    const when = document.createElement('span')
    meta.append(badge, when)
    body.append(title, meta)
    a.append(thumb, body)
    li.append(a)
    entry = { li, a, img, duration, bar, title, badge, when, state: null }
    cards.set(video.id, entry)
  }
  update(entry, video)
  return entry
}

function update(entry, video) {
  entry.title.textContent = video.title
  entry.a.dataset.state = video.state
  entry.badge.dataset.state = video.state
  const busy = video.state === 'uploading' || video.state === 'processing'
  setText(
    entry.badge,
    busy ? 'catalogue.state_progress' : `state.${video.state}`,
    busy ? { state: t(`state.${video.state}`), percent: percent(video.progress) } : undefined,
  )
  entry.when.textContent = video.created_at ? date(video.created_at) : ''
  entry.duration.hidden = !video.duration
  entry.duration.textContent = video.duration ? clock(video.duration) : ''
  entry.bar.hidden = !busy && video.state !== 'queued'
  if (video.state === 'queued') entry.bar.removeAttribute('value')
  else entry.bar.value = video.progress ?? 0
  if (video.state === 'ready' && entry.state !== 'ready') wantPoster(video.id, entry.img)
  entry.state = video.state
}

function render(videos) {
  lastVideos = videos
  const focusedId = document.activeElement?.closest?.('.card')?.dataset.id
  const items = videos.map((v) => card(v).li)
  grid.replaceChildren(...items)
  for (const id of cards.keys()) if (!videos.some((v) => v.id === id)) cards.delete(id)
  if (focusedId) cards.get(focusedId)?.a.focus({ preventScroll: true })
  if (!videos.length) {
    setText(status, query ? 'catalogue.no_results' : 'catalogue.empty', { query })
  } else {
    setText(status, query ? 'catalogue.results' : 'catalogue.count', { count: videos.length, query })
  }
  clearTimeout(refreshTimer)
  if (videos.some((v) => ['uploading', 'queued', 'processing'].includes(v.state))) {
    refreshTimer = setTimeout(() => load({ quiet: true }), REFRESH_MS)
  }
}

async function load({ quiet = false } = {}) {
  inflight?.abort()
  const controller = new AbortController()
  inflight = controller
  grid.setAttribute('aria-busy', 'true')
  if (!quiet && !grid.children.length) setText(status, 'catalogue.loading')
  try {
    const { videos } = await listVideos({ q: query, signal: controller.signal })
    if (inflight === controller) render(videos)
  } catch (err) {
    if (err?.name === 'AbortError') return
    setText(status, 'catalogue.error', { code: err.code ?? 'network' })
    clearTimeout(refreshTimer)
    refreshTimer = setTimeout(() => load({ quiet: true }), REFRESH_MS * 2)
  } finally {
    if (inflight === controller) grid.removeAttribute('aria-busy')
  }
}

function wire() {
  search.value = query
  let debounce = null
  search.addEventListener('input', () => {
    clearTimeout(debounce)
    debounce = setTimeout(() => {
      query = search.value.trim()
      const url = new URL(location.href)
      if (query) url.searchParams.set('q', query)
      else url.searchParams.delete('q')
      history.replaceState(history.state, '', url)
      load()
    }, DEBOUNCE_MS)
  })
  document.getElementById('search-form').addEventListener('submit', (e) => {
    e.preventDefault()
    clearTimeout(debounce)
    query = search.value.trim()
    load()
  })
  // Down from the search box into the grid; up from the top row back to it.
  search.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' && grid.querySelector('.card')) {
      e.preventDefault()
      grid.querySelector('.card').focus()
    }
  })
  arrowNavigation(grid, '.card', (key) => {
    if (key !== 'ArrowUp') return false
    search.focus()
    return true
  })
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') load({ quiet: true })
  })
  onLanguageChange(() => render(lastVideos))
}

async function main() {
  await initI18n()
  mountLanguagePickers()
  wire()
  await load()
}

main()
