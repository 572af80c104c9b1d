// Arrow-key navigation between cards laid out in a grid, for TV remotes (which have arrows
// and OK, but no Tab) and for keyboards alike: the nearest element in the pressed direction.

const DIRECTIONS = { ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0] }

function centre(el) {
  const r = el.getBoundingClientRect()
  return { x: r.left + r.width / 2, y: r.top + r.height / 2 }
}

/** The element of `candidates` nearest to `from` in direction [dx, dy], or null. */
export function nearest(from, candidates, [dx, dy]) {
  const a = centre(from)
  let best = null
  let bestScore = Infinity
  for (const el of candidates) {
    if (el === from) continue
    const b = centre(el)
    const along = (b.x - a.x) * dx + (b.y - a.y) * dy
    if (along <= 1) continue
    const across = Math.abs((b.x - a.x) * dy) + Math.abs((b.y - a.y) * dx)
    const score = along + across * 2
    if (score < bestScore) {
      bestScore = score
      best = el
    }
  }
  return best
}

/**
 * Moves the focus among `container`'s elements matching `selector` with the arrow keys.
 * `onEdge(direction)` is called when nothing lies that way (e.g. up to the search box).
 */
export function arrowNavigation(container, selector, onEdge = () => false) {
  container.addEventListener('keydown', (e) => {
    const dir = DIRECTIONS[e.key]
    if (!dir || e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return
    const from = e.target.closest?.(selector)
    if (!from || !container.contains(from)) return
    const next = nearest(from, [...container.querySelectorAll(selector)], dir)
    if (next) {
      next.focus()
      next.scrollIntoView({ block: 'nearest', inline: 'nearest' })
      e.preventDefault()
    } else if (onEdge(e.key)) {
      e.preventDefault()
    }
  })
}
