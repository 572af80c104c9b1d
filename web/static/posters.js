// Poster thumbnails for cards: one playback grant per ready video, a few at a time,
// remembered per tab until shortly before the grant expires. A video whose grant is refused
// (private, marked sensitive) keeps its plain placeholder.

import { playback } from './api.js'

const CONCURRENCY = 4
const CACHE = 'poster:'

const queue = []
let running = 0

function cached(id) {
  try {
    const hit = JSON.parse(sessionStorage.getItem(CACHE + id))
    if (hit && hit.expiresAt * 1000 > Date.now() + 60_000) return hit.url
  } catch {}
  return null
}

/** Shows video `id`'s poster in `img` once it is known. */
export function wantPoster(id, img) {
  const url = cached(id)
  if (url) return showPoster(img, url)
  queue.push([id, img])
  pump()
}

function pump() {
  while (running < CONCURRENCY && queue.length) {
    const [id, img] = queue.shift()
    running += 1
    playback(id)
      .then((grant) => {
        try {
          sessionStorage.setItem(CACHE + id, JSON.stringify({ url: grant.poster, expiresAt: grant.expiresAt }))
        } catch {}
        showPoster(img, grant.poster)
      })
      .catch(() => {})
      .finally(() => {
        running -= 1
        pump()
      })
  }
}

function showPoster(img, url) {
  if (img.src === url) return
  img.addEventListener('load', () => (img.dataset.loaded = ''), { once: true })
  img.src = url
}
