// Video cards: a poster thumbnail (from a playback grant, once the video is ready), the
// duration, the title in any script, the state (with progress while it is uploaded or
// processed), the date and, where asked, the view count. Cards are kept by video id and
// updated in place, so a refresh neither flickers nor loses focus. The catalogue and channel
// pages share them.

import { clock, date, percent } from './format.js'
import { setText, t } from './i18n.js'
import { wantPoster } from './posters.js'

export class Cards {
  /** `views`: show each video's view count. */
  constructor({ views = false } = {}) {
    this.views = views
    /** Video id → card parts. */
    this.entries = new Map()
  }

  /** The card of `video`, made or updated. */
  card(video) {
    let entry = this.entries.get(video.id)
    if (!entry) {
      entry = build(video, this.views)
      this.entries.set(video.id, entry)
    }
    update(entry, video)
    return entry
  }

  /** Forgets the cards of videos not in `videos`. */
  keepOnly(videos) {
    for (const id of this.entries.keys()) if (!videos.some((v) => v.id === id)) this.entries.delete(id)
  }
}

function build(video, withViews) {
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
  const views = withViews ? document.createElement('span') : null
  if (views) {
    views.className = 'views'
    meta.append(views)
  }
  const badge = document.createElement('span')
  badge.className = 'badge'
  const when = document.createElement('span')
  meta.append(badge, when)
  body.append(title, meta)
  a.append(thumb, body)
  li.append(a)
  return { li, a, img, duration, bar, title, views, badge, when, state: null }
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
  if (entry.views) {
    entry.views.dataset.count = String(video.views ?? 0)
    setText(entry.views, 'common.views', { count: video.views ?? 0 })
  }
  entry.when.textContent = video.created_at ? date(video.created_at) : ''
  entry.duration.hidden = !video.duration
  entry.duration.textContent = video.duration ? clock(video.duration) : ''
  entry.bar.hidden = !busy && video.state !== 'queued'
  if (video.state === 'queued') entry.bar.removeAttribute('value')
  else entry.bar.value = video.progress ?? 0
  if (video.state === 'ready' && entry.state !== 'ready') wantPoster(video.id, entry.img)
  entry.state = video.state
}
