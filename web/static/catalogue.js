// /: the catalogue. A search box (debounced, kept in the address as `?q=`), a grid of cards
// with poster thumbnails, titles in any script, each video's state and, while it is being
// uploaded or processed, its progress, refreshed until it settles.

import { listVideos } from './api.js'
import { Cards } from './cards.js'
import { initI18n, mountLanguagePickers, onLanguageChange, setText } from './i18n.js'
import { refreshNav } from './nav.js'
import { arrowNavigation } from './spatial.js'

const DEBOUNCE_MS = 250
const REFRESH_MS = 4000

const search = document.getElementById('search')
const grid = document.getElementById('videos')
const status = document.getElementById('status')
const cards = new Cards()
let query = new URLSearchParams(location.search).get('q') ?? ''
let inflight = null
let refreshTimer = null
let lastVideos = []

function render(videos) {
  lastVideos = videos
  const focusedId = document.activeElement?.closest?.('.card')?.dataset.id
  const items = videos.map((v) => cards.card(v).li)
  grid.replaceChildren(...items)
  cards.keepOnly(videos)
  if (focusedId) cards.entries.get(focusedId)?.a.focus({ preventScroll: true })
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
  refreshNav()
  wire()
  await load()
}

main()
