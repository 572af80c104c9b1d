// Seek-bar previews from the storyboard: a WebVTT track whose cues name tiles of one sprite
// (`storyboard.jpg#xywh=x,y,w,h`), URLs relative to the track so they carry the token.

function seconds(stamp) {
  const parts = stamp.trim().split(':').map(Number)
  return parts.reduce((total, part) => total * 60 + part, 0)
}

/** Parses the track: [{start, end, url, x, y, w, h}], sorted by start. */
export function parseStoryboard(text, baseUrl) {
  const cues = []
  const lines = text.replace(/\r\n?/g, '\n').split('\n')
  for (let i = 0; i < lines.length; i++) {
    const timing = lines[i].match(/^\s*([\d:.]+)\s+-->\s+([\d:.]+)/)
    if (!timing) continue
    const target = (lines[i + 1] ?? '').trim()
    const hash = target.match(/^(.*)#xywh=(\d+),(\d+),(\d+),(\d+)$/)
    if (!hash) continue
    const [, file, x, y, w, h] = hash
    cues.push({
      start: seconds(timing[1]),
      end: seconds(timing[2]),
      url: new URL(file, baseUrl).href,
      x: Number(x),
      y: Number(y),
      w: Number(w),
      h: Number(h),
    })
  }
  return cues.sort((a, b) => a.start - b.start)
}

/** Loads the track; an empty list when there is none (previews are a nicety, never an error). */
export async function loadStoryboard(url) {
  try {
    const response = await fetch(url)
    if (!response.ok) return []
    const cues = parseStoryboard(await response.text(), url)
    // Warm the sprite so the first hover shows a picture at once.
    if (cues[0]) new Image().src = cues[0].url
    return cues
  } catch {
    return []
  }
}

/** The cue showing time `t`. */
export function cueAt(cues, t) {
  let lo = 0
  let hi = cues.length - 1
  let found = null
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (cues[mid].start <= t) {
      found = cues[mid]
      lo = mid + 1
    } else {
      hi = mid - 1
    }
  }
  return found
}

/** Paints cue `cue` into `el` (a box sized by CSS), scaling the tile to the box's width. */
export function paintCue(el, cue) {
  if (!cue) {
    el.style.backgroundImage = ''
    delete el.dataset.cue
    return
  }
  el.dataset.cue = cueKey(cue)
  const width = el.clientWidth || cue.w
  const scale = width / cue.w
  el.style.height = `${Math.round(cue.h * scale)}px`
  el.style.backgroundImage = `url("${cue.url.replace(/"/g, '%22')}")`
  el.style.backgroundPosition = `${-cue.x * scale}px ${-cue.y * scale}px`
  // The sprite's full size is unknown until it loads; scaling it by the same factor keeps tiles aligned.
  if (spriteSizes.has(cue.url)) {
    const sprite = spriteSizes.get(cue.url)
    el.style.backgroundSize = sprite ? `${sprite.w * scale}px ${sprite.h * scale}px` : ''
  } else {
    el.style.backgroundSize = ''
    measureSprite(cue.url).then(() => el.dataset.cue === cueKey(cue) && paintCue(el, cue))
  }
}

const cueKey = (cue) => `${cue.url}#${cue.x},${cue.y}`

const spriteSizes = new Map()
const measuring = new Map()

function measureSprite(url) {
  if (!measuring.has(url)) {
    measuring.set(
      url,
      new Promise((resolve) => {
        const img = new Image()
        img.onload = () => {
          spriteSizes.set(url, { w: img.naturalWidth, h: img.naturalHeight })
          resolve()
        }
        img.onerror = () => {
          spriteSizes.set(url, null)
          resolve()
        }
        img.src = url
      }),
    )
  }
  return measuring.get(url)
}
