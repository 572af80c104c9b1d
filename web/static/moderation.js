// /moderation: the open reports, oldest first, for moderators. Each shows the video (a link
// to watch it), the reason and the reporter's words; the moderator writes a note for the
// creator and takes the video down, gates it as sensitive (viewers confirm before it plays),
// or dismisses the report. Each report is decided once.

import { decideReport, hasRole, listReports, meOrNull } from './api.js'
import { element } from './dom.js'
import { showError } from './errors.js'
import { date } from './format.js'
import { initI18n, mountLanguagePickers, setText } from './i18n.js'
import { refreshNav } from './nav.js'
import { hideNotice, showNotice } from './notice.js'

const RESOLUTIONS = [
  { value: 'taken_down', key: 'moderation.take_down', className: 'danger' },
  { value: 'gated', key: 'moderation.gate', className: '' },
  { value: 'dismissed', key: 'moderation.dismiss', className: '' },
]

const $ = (id) => document.getElementById(id)
const list = $('reports')
const status = $('status')
const notice = $('notice')
let open = 0

function countOpen() {
  if (open) setText(status, 'moderation.open', { count: open })
  else setText(status, 'moderation.empty')
}

function reportItem(report) {
  const li = element('li', 'report panel')
  li.dataset.id = report.id
  li.dataset.video = report.video_id
  li.dataset.reason = report.reason

  const head = element('div', 'report-head')
  const title = element('a', 'report-video', { dir: 'auto' })
  title.href = `/watch/${encodeURIComponent(report.video_id)}`
  if (report.video?.title) title.textContent = report.video.title
  else setText(title, 'moderation.video_gone')
  const reason = element('span', 'badge reason')
  reason.dataset.reason = report.reason
  setText(reason, `report.reason.${report.reason}`)
  const meta = element('span', 'hint')
  const bits = [date(report.created_at)]
  meta.textContent = bits.join(' · ')
  head.append(title, reason, meta)
  if (report.video) {
    const state = element('span', 'badge')
    state.dataset.state = report.video.state
    setText(state, `state.${report.video.state}`)
    const privacy = element('span', 'badge')
    privacy.dataset.privacy = report.video.privacy ?? 'public'
    setText(privacy, `privacy.${report.video.privacy ?? 'public'}`)
    head.append(state, privacy)
  }

  const words = element('blockquote', 'report-text', { dir: 'auto' })
  words.textContent = report.text
  words.hidden = !report.text

  const form = element('form', 'decision', { novalidate: '' })
  const noteId = `note-${report.id}`
  const label = element('label', null, { for: noteId })
  setText(label, 'moderation.note')
  const note = element('textarea', 'note', { id: noteId, dir: 'auto', maxlength: '2000', rows: '2' })
  const hint = element('span', 'hint')
  setText(hint, 'moderation.note_hint')
  const field = element('div', 'field')
  field.append(label, note, hint)
  const actions = element('div', 'actions')
  const buttons = RESOLUTIONS.map(({ value, key, className }) => {
    const button = element('button', `button ${className}`.trim(), { type: 'button' })
    button.dataset.resolution = value
    setText(button, key)
    button.addEventListener('click', () => decide(li, report, value, note.value.trim(), buttons))
    actions.append(button)
    return button
  })
  const error = element('p', 'error', { role: 'alert' })
  error.hidden = true
  const done = element('p', 'decided', { role: 'status' })
  done.hidden = true
  form.append(field, actions)
  li.append(head, words, form, error, done)
  return li
}

async function decide(li, report, resolution, note, buttons) {
  const error = li.querySelector('.error')
  for (const b of buttons) b.disabled = true
  try {
    await decideReport(report.id, resolution, note)
    showError(error, null)
    li.dataset.decided = resolution
    li.querySelector('form').hidden = true
    const done = li.querySelector('.decided')
    done.hidden = false
    setText(done, `moderation.decided.${resolution}`)
    open -= 1
    countOpen()
  } catch (err) {
    for (const b of buttons) b.disabled = false
    if (err.code === 'decided') {
      li.dataset.decided = 'elsewhere'
      li.querySelector('form').hidden = true
    }
    showError(error, err)
  }
}

async function load() {
  hideNotice(notice)
  setText(status, 'moderation.loading')
  let who
  try {
    who = await meOrNull()
  } catch (err) {
    status.textContent = ''
    return showNotice(notice, 'moderation_error', { code: err.code, actions: [{ key: 'notice.retry', run: load, primary: true, id: 'retry' }] })
  }
  refreshNav()
  if (!who) {
    status.textContent = ''
    const next = encodeURIComponent(location.pathname)
    return showNotice(notice, 'moderators_only', {
      actions: [{ key: 'common.sign_in', href: `/account?next=${next}`, primary: true, id: 'sign-in' }],
    })
  }
  if (!hasRole(who.user.role, 'moderator')) {
    status.textContent = ''
    return showNotice(notice, 'moderators_only', {
      actions: [{ key: 'notice.back_to_catalogue', href: '/', id: 'home' }],
    })
  }
  $('refresh').hidden = false
  try {
    const { reports } = await listReports()
    open = reports.length
    list.replaceChildren(...reports.map(reportItem))
    countOpen()
  } catch (err) {
    status.textContent = ''
    showNotice(notice, 'moderation_error', { code: err.code, actions: [{ key: 'notice.retry', run: load, primary: true, id: 'retry' }] })
  }
}

async function main() {
  await initI18n()
  mountLanguagePickers()
  refreshNav()
  $('refresh').addEventListener('click', load)
  await load()
}

main()
