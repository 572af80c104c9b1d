// The clear page a viewer meets instead of a blank player: what happened, in their language,
// and what they can do about it. One element, `#notice`, filled per case.

import { setText } from './i18n.js'

/**
 * Which notice an error code (from the API, the PoP or the player) calls for. Unknown codes
 * fall back to a generic one that still shows the code.
 */
export function noticeFor(code, status = 0) {
  switch (code) {
    case 'token_expired':
      return 'token_expired'
    case 'bad_token':
    case 'token_wrong_video':
      return 'bad_token'
    case 'not_ready':
      return 'not_ready'
    case 'deleted':
    case 'gone':
      return 'deleted'
    case 'not_found':
      return status === 410 ? 'deleted' : 'not_found'
    case 'unsupported':
      return 'unsupported'
    case 'private_video':
      return 'private'
    case 'consent_required':
      return 'sensitive'
    case 'media':
      return 'media'
    case 'network':
    case 'origin_unavailable':
    case 'origin_timeout':
      return 'network'
    default:
      return status === 410 ? 'deleted' : 'error'
  }
}

/**
 * Shows notice `kind` in `root`: its title and text keys are `notice.{kind}.title` and
 * `notice.{kind}.text`. `actions` are {key, href} links or {key, run} buttons; the first gets
 * the focus so a remote's OK key acts on it. `code` is shown for support.
 */
export function showNotice(root, kind, { actions = [], code = null, vars = {}, extra = null } = {}) {
  root.hidden = false
  root.dataset.notice = kind
  root.replaceChildren()

  const icon = document.createElement('div')
  icon.className = `notice-icon notice-icon-${kind}`
  icon.setAttribute('aria-hidden', 'true')

  const title = document.createElement('h2')
  title.id = 'notice-title'
  title.tabIndex = -1
  setText(title, `notice.${kind}.title`, vars)

  const text = document.createElement('p')
  setText(text, `notice.${kind}.text`, vars)

  root.append(icon, title, text)
  if (extra) root.append(extra)
  if (code) {
    const small = document.createElement('p')
    small.className = 'notice-code'
    setText(small, 'notice.code', { code })
    root.append(small)
  }
  const row = document.createElement('div')
  row.className = 'notice-actions'
  for (const action of actions) {
    let el
    if (action.href) {
      el = document.createElement('a')
      el.href = action.href
      el.className = 'button'
    } else {
      el = document.createElement('button')
      el.type = 'button'
      el.className = 'button'
      el.addEventListener('click', action.run)
    }
    if (action.primary) el.classList.add('primary')
    el.dataset.action = action.id ?? action.key
    setText(el, action.key)
    row.append(el)
  }
  if (actions.length) root.append(row)
  root.setAttribute('aria-labelledby', 'notice-title')
  const first = row.querySelector('a, button')
  ;(first ?? title).focus({ preventScroll: true })
  return root
}

export function hideNotice(root) {
  root.hidden = true
  delete root.dataset.notice
  root.replaceChildren()
}
