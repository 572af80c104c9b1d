// The header's account links on every page: "Sign in" or "Account" (with the handle in its
// title), and "Moderation" for moderators. Drawn from the hint api.js keeps of who is signed
// in, so a page that needs no account asks the API nothing; `refreshNav()` redraws it after a
// page learned better (signed in or out, or found the session gone).

import { accountHint, hasRole } from './api.js'
import { setText } from './i18n.js'

/** Redraws the account links from what this browser knows of its session. */
export function refreshNav() {
  const hint = accountHint()
  for (const link of document.querySelectorAll('[data-nav="account"]')) {
    setText(link, hint ? 'common.account' : 'common.sign_in')
    if (hint) link.title = `@${hint.handle}`
    else link.removeAttribute('title')
    link.dataset.signedIn = hint ? 'true' : 'false'
  }
  for (const link of document.querySelectorAll('[data-nav="moderation"]')) {
    link.hidden = !(hint && hasRole(hint.role, 'moderator'))
  }
}
