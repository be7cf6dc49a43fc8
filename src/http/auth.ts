import { createHash, timingSafeEqual } from 'node:crypto'

const digest = (value: string) => createHash('sha256').update(value).digest()

/**
 * Checks `Authorization: Bearer <token>` against every configured token (two during a
 * rotation). Comparing fixed-length digests, and always comparing against all tokens, keeps the
 * time independent of which token matched and of either token's length.
 */
export function createTokenCheck (tokens: readonly string[]): (header: string | undefined) => boolean {
  const expected = tokens.map(digest)
  return (header) => {
    const match = /^Bearer[ \t]+(\S+)\s*$/i.exec(header ?? '')
    const presented = digest(match?.[1] ?? '')
    let ok = false
    for (const token of expected) ok = timingSafeEqual(token, presented) || ok
    return ok && match !== null
  }
}
