// API errors in words: `errors.{code}` when the language has a sentence for the code, else a
// generic one that still names the code (and the server's message) for support.

import { setText, t } from './i18n.js'

/** The string key and variables for an ApiError (or anything with a `code`). */
export function errorText(err) {
  const code = err?.code ?? 'network'
  const vars = { code, message: err?.message && err.message !== code ? err.message : '', seconds: err?.retryAfter ?? 60 }
  const key = `errors.${code}`
  return t(key) === key ? ['errors.generic', vars] : [key, vars]
}

/** Shows `err` in `el` (hidden when `err` is null), keeping it translated. */
export function showError(el, err) {
  el.hidden = !err
  if (!err) {
    el.textContent = ''
    delete el.dataset.code
    return
  }
  const [key, vars] = errorText(err)
  el.dataset.code = err.code ?? 'network'
  setText(el, key, vars)
}
