// /channel/{handle}: a channel's name, its owner, and its public videos as cards with
// posters (from playback grants, as the catalogue does), durations and view counts.

import { getChannel } from './api.js'
import { Cards } from './cards.js'
import { initI18n, mountLanguagePickers, onLanguageChange, setText, t } from './i18n.js'
import { refreshNav } from './nav.js'
import { showNotice } from './notice.js'
import { arrowNavigation } from './spatial.js'

const handle = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] ?? '')
const grid = document.getElementById('videos')
const status = document.getElementById('status')
let answer = null
const cards = new Cards({ views: true })

function render() {
  if (!answer) return
  const { channel, owner, videos } = answer
  document.getElementById('channel-head').hidden = false
  const name = channel.name || channel.handle
  document.getElementById('channel-name').textContent = name
  document.getElementById('channel-avatar').textContent = [...name][0]?.toUpperCase() ?? ''
  document.getElementById('channel-handle').textContent = `@${channel.handle}`
  const ownerEl = document.getElementById('channel-owner')
  ownerEl.hidden = !owner || owner.display_name === name
  if (owner) setText(ownerEl, 'channel.owner', { name: owner.display_name || owner.handle })
  document.title = t('channel.document_title_named', { name })
  grid.replaceChildren(...videos.map((v) => cards.card(v).li))
  if (videos.length) setText(status, 'catalogue.count', { count: videos.length })
  else setText(status, 'channel.empty')
}

async function load() {
  setText(status, 'catalogue.loading')
  try {
    answer = await getChannel(handle)
    render()
  } catch (err) {
    status.textContent = ''
    const notice = document.getElementById('notice')
    const home = { key: 'notice.back_to_catalogue', href: '/', id: 'home' }
    if (err.status === 404) showNotice(notice, 'channel_not_found', { actions: [home] })
    else showNotice(notice, 'channel_error', { code: err.code, actions: [{ key: 'notice.retry', run: () => location.reload(), primary: true, id: 'retry' }, home] })
  }
}

async function main() {
  await initI18n()
  mountLanguagePickers()
  refreshNav()
  arrowNavigation(grid, '.card', () => false)
  onLanguageChange(() => render())
  await load()
}

main()
