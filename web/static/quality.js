// The quality menu: Auto plus one entry per rung by height. A pick takes effect at the next
// segment (hls.js `nextLevel`: what is buffered past it is replaced), never by stalling.
// shaka-player is driven through the same level interface (`ShakaLevels`).

import { ChoiceMenu } from './menu.js'
import { t } from './i18n.js'

const AUTO = 'auto'

function badge(height) {
  if (height >= 2160) return '4K'
  if (height >= 1440) return 'QHD'
  if (height >= 720) return 'HD'
  return ''
}

export class QualityMenu {
  constructor(button, list, label) {
    this.label = label
    this.button = button
    this.hls = null
    this.menu = new ChoiceMenu(button, list, (value) => this.choose(value))
    button.hidden = true
  }

  /** Fills the menu from hls.js's levels (sorted ascending by bitrate; shown by height, highest first). */
  attach(hls) {
    this.hls = hls
    this.render()
    this.button.hidden = this.heights().length < 2
  }

  heights() {
    if (!this.hls) return []
    const seen = new Set()
    for (const level of this.hls.levels) if (level.height) seen.add(level.height)
    return [...seen].sort((a, b) => b - a)
  }

  /** The level index for a height (the highest bitrate one if several share it). */
  levelFor(height) {
    let best = -1
    this.hls.levels.forEach((level, i) => {
      if (level.height === height && (best < 0 || level.bitrate > this.hls.levels[best].bitrate)) best = i
    })
    return best
  }

  selected() {
    if (!this.hls || this.hls.autoLevelEnabled) return AUTO
    return String(this.hls.levels[this.hls.manualLevel]?.height ?? AUTO)
  }

  render() {
    if (!this.hls) return
    const playing = this.hls.levels[this.hls.currentLevel]?.height
    const items = [
      {
        value: AUTO,
        label: t('player.quality_auto'),
        detail: playing && this.hls.autoLevelEnabled ? `${playing}p` : '',
        data: { height: '' },
      },
      ...this.heights().map((h) => ({ value: h, label: `${h}p`, detail: badge(h), data: { height: String(h) } })),
    ]
    const chosen = this.selected()
    for (const item of items) item.checked = String(item.value) === chosen
    this.menu.setItems(items)
    this.updateLabel()
  }

  updateLabel() {
    if (!this.hls) return
    const playing = this.hls.levels[this.hls.currentLevel]?.height
    const text = this.hls.autoLevelEnabled
      ? playing
        ? t('player.quality_auto_at', { height: playing })
        : t('player.quality_auto')
      : `${this.hls.levels[this.hls.manualLevel]?.height ?? ''}p`
    this.label.textContent = text
    this.button.setAttribute('aria-label', t('player.quality_label', { quality: text }))
    this.button.title = t('player.quality')
  }

  choose(value) {
    if (!this.hls) return
    if (value === AUTO) {
      // Back to adaptive from the next segment on, keeping what is buffered.
      this.hls.loadLevel = -1
    } else {
      const index = this.levelFor(Number(value))
      if (index >= 0) this.hls.nextLevel = index
    }
    this.updateLabel()
  }

  /** Called when hls.js switched levels, so "Auto (720p)" stays true. */
  switched() {
    this.updateLabel()
    const auto = this.menu.items()[0]
    const playing = this.hls?.levels[this.hls.currentLevel]?.height
    const detail = auto?.querySelector('.menu-detail')
    if (detail) detail.textContent = playing && this.hls.autoLevelEnabled ? `${playing}p` : ''
  }
}

/**
 * shaka-player's variants as the hls.js level interface the menu speaks: `levels` ascending
 * by bitrate, `currentLevel`, `manualLevel`, `autoLevelEnabled`, and `loadLevel = -1` (back
 * to adaptive) or `nextLevel = i` (this variant, what is buffered ahead replaced).
 */
export class ShakaLevels {
  constructor(player) {
    this.player = player
  }

  get levels() {
    return this.player
      .getVariantTracks()
      .filter((t) => t.height)
      .sort((a, b) => a.bandwidth - b.bandwidth)
      .map((track) => ({ height: track.height, bitrate: track.bandwidth, track }))
  }

  get autoLevelEnabled() {
    return this.player.getConfiguration().abr.enabled
  }

  get currentLevel() {
    return this.levels.findIndex((l) => l.track.active)
  }

  get manualLevel() {
    return this.currentLevel
  }

  set loadLevel(index) {
    if (index === -1) this.player.configure({ abr: { enabled: true } })
  }

  set nextLevel(index) {
    const level = this.levels[index]
    if (!level) return
    this.player.configure({ abr: { enabled: false } })
    this.player.selectVariantTrack(level.track, true, 1)
  }
}
