// An account's upload quota as two meters (the last 24 hours, and in total), in the
// `#quota` panel the account and upload pages share.

import { bytes, percent } from './format.js'
import { setText } from './i18n.js'

/** Fills `#quota` from `GET /v1/me`'s {day_bytes, day_limit, total_bytes, total_limit}; hides it without. */
export function renderQuota(quota) {
  const panel = document.getElementById('quota')
  panel.hidden = !quota
  if (!quota) return
  const meter = (name, used, limit) => {
    const bar = document.getElementById(`quota-${name}`)
    bar.value = limit ? Math.min(1, used / limit) : 0
    bar.dataset.full = String(limit > 0 && used >= limit)
    setText(document.getElementById(`quota-${name}-text`), 'account.quota_used', {
      used: bytes(used),
      limit: bytes(limit),
      percent: percent(limit ? used / limit : 0),
    })
  }
  meter('day', quota.day_bytes ?? 0, quota.day_limit ?? 0)
  meter('total', quota.total_bytes ?? 0, quota.total_limit ?? 0)
}
