// Numbers for people: clock times, sizes, rates and dates in the UI language.

import { formatNumber, language } from './i18n.js'

/** 75.4 → "1:15", 3725 → "1:02:05". */
export function clock(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) seconds = 0
  const s = Math.floor(seconds)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = String(s % 60).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`
}

/** Bytes in the largest unit that keeps a number ≥ 1 (MB, GB: powers of 1000, as drives say). */
export function bytes(n) {
  const units = ['byte', 'kilobyte', 'megabyte', 'gigabyte']
  let i = 0
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000
    i += 1
  }
  return formatNumber(n, { style: 'unit', unit: units[i], unitDisplay: 'short', maximumFractionDigits: i > 1 ? 1 : 0 })
}

/** Bytes per second as megabytes per second. */
export function rate(bytesPerSecond) {
  return formatNumber(bytesPerSecond / 1e6, {
    style: 'unit',
    unit: 'megabyte-per-second',
    unitDisplay: 'short',
    maximumFractionDigits: 1,
  })
}

/** A duration such as "2 min 5 sec" for remaining times. */
export function remaining(seconds) {
  seconds = Math.max(0, Math.round(seconds))
  const parts = []
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  const s = seconds % 60
  const unit = (value, name) => formatNumber(value, { style: 'unit', unit: name, unitDisplay: 'short' })
  if (h) parts.push(unit(h, 'hour'))
  if (m) parts.push(unit(m, 'minute'))
  if (!h && (s || !m)) parts.push(unit(s, 'second'))
  return parts.join(' ')
}

export function percent(fraction) {
  return formatNumber(Math.max(0, Math.min(1, fraction || 0)), { style: 'percent', maximumFractionDigits: 0 })
}

/** A creation time (milliseconds) as a date in the UI language. */
export function date(ms) {
  return new Intl.DateTimeFormat(language(), { dateStyle: 'medium' }).format(new Date(ms))
}
