import { configure } from 'safe-stable-stringify'

/**
 * Deeper than this, a value is not stored: JSON.stringify recurses and overflows the stack a few
 * thousand levels down (where exactly depends on the caller's stack), and so do the dashboard and
 * most JSON tools. Postgres accepts jsonb nested 10,000 deep; Sequin sends it as it is.
 */
export const MAX_JSON_DEPTH = 1_000

export interface ParsedJson {
  value: unknown
  /** Nesting depth of the whole value: 0 for a scalar, 1 for `{}` or `[]`, and so on. */
  depth: number
}

/**
 * `JSON.parse`, except that an integer beyond ±(2^53 − 1) comes back as its exact decimal text
 * (a string), where `JSON.parse` would round it: an int8 column, a snowflake id, a commit LSN of
 * a long-lived server, a jsonb numeric of 400 digits (which `JSON.parse` makes Infinity, and
 * JSON.stringify then null). Like `JSON.parse` (and unlike object spreads or assignments of parsed
 * data), no key ever sets a prototype: `__proto__` is an own property like any other.
 *
 * The native parser does the work. Only a value holding an integer it could not represent is
 * parsed again, from a copy of the text with those integers quoted; neither pass recurses, so
 * any depth is parsed.
 */
export function parseExactJson (text: string): ParsedJson {
  const value: unknown = JSON.parse(text)
  const { depth, inexact } = inspect(value)
  if (!inexact) return { value, depth }
  return { value: JSON.parse(quoteUnsafeIntegers(text)), depth }
}

/** The nesting depth of a parsed value, and whether it holds an integer JSON.parse had to round. */
function inspect (root: unknown): { depth: number, inexact: boolean } {
  const values: unknown[] = [root]
  const depths: number[] = [0]
  let max = 0
  let inexact = false
  while (values.length > 0) {
    const value = values.pop()
    const depth = depths.pop()!
    if (typeof value === 'number') {
      // Beyond 2^53, or beyond any double (a 309-digit integer parses as Infinity).
      if (!inexact && (!Number.isFinite(value) || (Number.isInteger(value) && !Number.isSafeInteger(value)))) inexact = true
      continue
    }
    if (value === null || typeof value !== 'object') continue
    const inner = depth + 1
    if (inner > max) max = inner
    const children = Array.isArray(value) ? value : Object.values(value)
    for (const child of children) {
      if (child !== null && (typeof child === 'object' || typeof child === 'number')) {
        values.push(child)
        depths.push(inner)
      }
    }
  }
  return { depth: max, inexact }
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const MINUS = 0x2d
const ZERO = 0x30
const NINE = 0x39
const LONG_INTEGER = /^-?\d{16,}$/

function isNumberChar (code: number): boolean {
  // digits . + - e E
  return (code >= ZERO && code <= NINE) || code === 0x2e || code === 0x2b || code === MINUS || code === 0x65 || code === 0x45
}

/** Index just past the string literal that opens at `start` (text is valid JSON). */
function endOfString (text: string, start: number): number {
  let from = start + 1
  for (;;) {
    const quote = text.indexOf('"', from)
    if (quote === -1) return text.length
    let backslashes = 0
    for (let k = quote - 1; text.charCodeAt(k) === BACKSLASH; k--) backslashes++
    if (backslashes % 2 === 0) return quote + 1
    from = quote + 1
  }
}

/**
 * Valid JSON text with every integer literal beyond ±(2^53 − 1), and every number literal beyond
 * any double (1e400), turned into a string literal holding its text.
 */
export function quoteUnsafeIntegers (text: string): string {
  const parts: string[] = []
  let copied = 0
  let i = 0
  while (i < text.length) {
    const code = text.charCodeAt(i)
    if (code === QUOTE) {
      i = endOfString(text, i)
    } else if (code === MINUS || (code >= ZERO && code <= NINE)) {
      const start = i
      while (i < text.length && isNumberChar(text.charCodeAt(i))) i++
      const literal = text.slice(start, i)
      const number = Number(literal)
      if ((LONG_INTEGER.test(literal) && !Number.isSafeInteger(number)) || !Number.isFinite(number)) {
        parts.push(text.slice(copied, start), '"', literal, '"')
        copied = i
      }
    } else {
      i++
    }
  }
  parts.push(text.slice(copied))
  return parts.join('')
}

/** Nesting depth of a value, counting no further than `limit + 1` (iterative: any depth). */
export function nestingDepth (root: unknown, limit = MAX_JSON_DEPTH): number {
  const values: unknown[] = [root]
  const depths: number[] = [0]
  let max = 0
  while (values.length > 0) {
    const value = values.pop()
    const depth = depths.pop()!
    if (value === null || typeof value !== 'object') continue
    const inner = depth + 1
    if (inner > max) max = inner
    if (inner > limit) return inner
    for (const child of Array.isArray(value) ? value : Object.values(value)) {
      if (child !== null && typeof child === 'object') {
        values.push(child)
        depths.push(inner)
      }
    }
  }
  return max
}

const bounded = configure({ maximumDepth: 32, maximumBreadth: 200, circularValue: '[Circular]', deterministic: false })

/**
 * A readable excerpt of a value that may be too deep or too large to store whole: levels past 32
 * read `[Object]`/`[Array]`, and the text is cut at `maxChars`. For quarantine and logs only.
 */
export function previewJson (value: unknown, maxChars = 16_384): string {
  const text = bounded(value) ?? String(value)
  return text.length <= maxChars ? text : `${text.slice(0, maxChars)}… (${text.length - maxChars} more characters)`
}
