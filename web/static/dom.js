// Small DOM builders shared by the pages that draw lists of their own (account, moderation).

/** A `tag` element with `className` (if any) and attributes. */
export function element(tag, className, attrs = {}) {
  const el = document.createElement(tag)
  if (className) el.className = className
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v)
  return el
}
