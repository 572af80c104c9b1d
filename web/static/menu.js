// A small accessible menu of radio choices (quality, speed) opened from a button: arrow keys
// (and a remote's up/down) move, Enter/OK picks, Escape/Back closes and returns to the button.

let openMenu = null

export class ChoiceMenu {
  /**
   * @param button the button that opens it (gets aria-haspopup/expanded/controls)
   * @param list   the element holding the items (gets role=menu)
   * @param onPick called with an item's value
   */
  constructor(button, list, onPick) {
    this.button = button
    this.list = list
    this.onPick = onPick
    button.setAttribute('aria-haspopup', 'menu')
    button.setAttribute('aria-expanded', 'false')
    button.setAttribute('aria-controls', list.id)
    list.setAttribute('role', 'menu')
    list.hidden = true
    button.addEventListener('click', () => (this.isOpen() ? this.close() : this.open()))
    button.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowUp' && !this.isOpen()) {
        e.preventDefault()
        e.stopPropagation()
        this.open()
      }
    })
    list.addEventListener('keydown', (e) => this.key(e))
    list.addEventListener('click', (e) => {
      const item = e.target.closest('[role="menuitemradio"]')
      if (item) this.pick(item)
    })
  }

  /** Replaces the items: [{value, label, checked, detail}]. */
  setItems(items) {
    this.list.replaceChildren()
    for (const item of items) {
      const el = document.createElement('button')
      el.type = 'button'
      el.setAttribute('role', 'menuitemradio')
      el.setAttribute('aria-checked', String(Boolean(item.checked)))
      el.tabIndex = -1
      el.dataset.value = String(item.value)
      for (const [k, v] of Object.entries(item.data ?? {})) el.dataset[k] = v
      const label = document.createElement('span')
      label.textContent = item.label
      el.append(label)
      if (item.detail !== undefined) {
        const detail = document.createElement('span')
        detail.className = 'menu-detail'
        detail.textContent = item.detail
        el.append(detail)
      }
      this.list.append(el)
    }
  }

  items() {
    return [...this.list.querySelectorAll('[role="menuitemradio"]')]
  }

  check(value) {
    for (const el of this.items()) el.setAttribute('aria-checked', String(el.dataset.value === String(value)))
  }

  isOpen() {
    return !this.list.hidden
  }

  open() {
    if (openMenu && openMenu !== this) openMenu.close(false)
    openMenu = this
    this.list.hidden = false
    this.button.setAttribute('aria-expanded', 'true')
    const items = this.items()
    ;(items.find((el) => el.getAttribute('aria-checked') === 'true') ?? items[0])?.focus()
    this.outside = (e) => {
      if (!this.list.contains(e.target) && !this.button.contains(e.target)) this.close(false)
    }
    document.addEventListener('pointerdown', this.outside, true)
  }

  close(returnFocus = true) {
    if (this.list.hidden) return
    this.list.hidden = true
    this.button.setAttribute('aria-expanded', 'false')
    document.removeEventListener('pointerdown', this.outside, true)
    if (openMenu === this) openMenu = null
    if (returnFocus) this.button.focus()
  }

  pick(item) {
    this.check(item.dataset.value)
    this.close()
    this.onPick(item.dataset.value)
  }

  key(e) {
    const items = this.items()
    const at = items.indexOf(document.activeElement)
    const move = (i) => items[(i + items.length) % items.length]?.focus()
    switch (e.key) {
      case 'ArrowDown':
        move(at + 1)
        break
      case 'ArrowUp':
        move(at - 1)
        break
      case 'Home':
        move(0)
        break
      case 'End':
        move(items.length - 1)
        break
      case 'Enter':
      case ' ':
        if (at >= 0) this.pick(items[at])
        break
      case 'Escape':
      case 'GoBack':
      case 'BrowserBack':
        this.close()
        break
      case 'Tab':
        this.close(false)
        return
      case 'ArrowLeft':
      case 'ArrowRight':
        break
      default:
        return
    }
    e.preventDefault()
    e.stopPropagation()
  }
}

/** Closes whichever menu is open; true if one was. */
export function closeOpenMenu() {
  if (!openMenu) return false
  openMenu.close()
  return true
}
