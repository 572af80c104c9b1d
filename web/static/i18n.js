// UI strings from /i18n/{lang}.json. The language comes from `?lang=`, then the viewer's last
// choice (localStorage), then the browser's languages, then English. Elements carry their
// string key in `data-i18n` (text) and `data-i18n-attr` ("aria-label:key;title:key"), so a
// change of language re-translates the whole page in place.

export const LANGUAGES = { en: 'English', ko: '한국어', ar: 'العربية' }
const FALLBACK = 'en'
const STORED = 'ui-language'

let lang = FALLBACK
let strings = {}
let fallback = {}
const listeners = []

function supported(tag) {
  if (!tag) return null
  const base = String(tag).toLowerCase().split('-')[0]
  return Object.hasOwn(LANGUAGES, base) ? base : null
}

function stored() {
  try {
    return localStorage.getItem(STORED)
  } catch {
    return null
  }
}

/** The language to use, by the order of precedence above. */
export function pickLanguage() {
  const asked = supported(new URLSearchParams(location.search).get('lang'))
  if (asked) return asked
  const remembered = supported(stored())
  if (remembered) return remembered
  for (const tag of navigator.languages ?? [navigator.language]) {
    const found = supported(tag)
    if (found) return found
  }
  return FALLBACK
}

async function load(code) {
  const response = await fetch(`/i18n/${code}.json`)
  if (!response.ok) throw new Error(`/i18n/${code}.json: ${response.status}`)
  return response.json()
}

/** Loads the strings and translates the page. */
export async function initI18n() {
  const wanted = pickLanguage()
  fallback = await load(FALLBACK).catch(() => ({}))
  strings = wanted === FALLBACK ? fallback : await load(wanted).catch(() => fallback)
  lang = strings === fallback ? FALLBACK : wanted
  applyDocument()
}

/** Switches language, remembers it, and re-translates everything. */
export async function setLanguage(code) {
  if (!supported(code)) return
  try {
    localStorage.setItem(STORED, code)
  } catch {}
  const url = new URL(location.href)
  if (url.searchParams.has('lang')) {
    url.searchParams.set('lang', code)
    history.replaceState(history.state, '', url)
  }
  strings = code === FALLBACK ? fallback : await load(code).catch(() => fallback)
  lang = strings === fallback ? FALLBACK : code
  applyDocument()
  for (const fn of listeners) fn(lang)
}

/** Calls `fn` after every language change. */
export function onLanguageChange(fn) {
  listeners.push(fn)
}

export function language() {
  return lang
}

export function direction() {
  return strings._meta?.dir === 'rtl' ? 'rtl' : 'ltr'
}

function lookup(table, key) {
  return key.split('.').reduce((node, part) => (node == null ? undefined : node[part]), table)
}

/**
 * The string for `key`, with `{name}` placeholders filled from `vars`. A string may be an
 * object of plural forms ({"one": ..., "other": ...}) chosen by `vars.count`.
 */
export function t(key, vars = {}) {
  let value = lookup(strings, key) ?? lookup(fallback, key)
  if (value && typeof value === 'object') {
    const form = new Intl.PluralRules(lang).select(Number(vars.count ?? 0))
    value = value[form] ?? value.other
  }
  if (typeof value !== 'string') return key
  return value.replace(/\{(\w+)\}/g, (whole, name) => {
    if (!(name in vars)) return whole
    const v = vars[name]
    return typeof v === 'number' ? formatNumber(v) : String(v)
  })
}

const UNIT_ABBREVIATIONS = {
  byte: 'B',
  kilobyte: 'kB',
  megabyte: 'MB',
  gigabyte: 'GB',
  'megabyte-per-second': 'MB/s',
  hour: 'h',
  minute: 'min',
  second: 's',
}

export function formatNumber(n, options = {}) {
  try {
    return new Intl.NumberFormat(lang, options).format(n)
  } catch {
    // Older TV browsers know no unit formatting.
    const { style, unit, ...rest } = options
    const number = new Intl.NumberFormat(lang, rest).format(style === 'percent' ? n * 100 : n)
    if (style === 'percent') return `${number}%`
    return unit ? `${number} ${UNIT_ABBREVIATIONS[unit] ?? unit}` : number
  }
}

/** Sets an element's text to a translated string and keeps it translated. */
export function setText(el, key, vars) {
  el.dataset.i18n = key
  if (vars) el.dataset.i18nVars = JSON.stringify(vars)
  else delete el.dataset.i18nVars
  el.textContent = t(key, vars)
}

/** Sets translated attributes: setAttrs(el, {'aria-label': 'player.play', title: 'player.play'}). */
export function setAttrs(el, map) {
  el.dataset.i18nAttr = Object.entries(map)
    .map(([attr, key]) => `${attr}:${key}`)
    .join(';')
  translate(el)
}

function translate(el) {
  if (el.dataset.i18n) {
    const vars = el.dataset.i18nVars ? JSON.parse(el.dataset.i18nVars) : undefined
    el.textContent = t(el.dataset.i18n, vars)
  }
  if (el.dataset.i18nAttr) {
    for (const pair of el.dataset.i18nAttr.split(';')) {
      const [attr, key] = pair.split(':')
      if (attr && key) el.setAttribute(attr, t(key))
    }
  }
}

/** Translates `root` and everything in it that carries a key. */
export function applyTo(root) {
  if (root.dataset) translate(root)
  for (const el of root.querySelectorAll('[data-i18n], [data-i18n-attr]')) translate(el)
}

function applyDocument() {
  document.documentElement.lang = lang
  document.documentElement.dir = direction()
  applyTo(document)
  for (const select of document.querySelectorAll('select[data-language-picker]')) select.value = lang
}

/** Fills every `<select data-language-picker>` with the languages, each in its own script. */
export function mountLanguagePickers() {
  for (const select of document.querySelectorAll('select[data-language-picker]')) {
    select.replaceChildren()
    for (const [code, name] of Object.entries(LANGUAGES)) {
      const option = document.createElement('option')
      option.value = code
      option.lang = code
      option.textContent = name
      select.append(option)
    }
    select.value = lang
    select.addEventListener('change', () => setLanguage(select.value))
  }
}
