import { createHash, timingSafeEqual } from 'node:crypto'

const digest = (value: string) => createHash('sha256').update(value).digest()

/** `Basic <base64(user:password)>` → its two parts, or null when the header is not one. */
function parseBasic (header: string | undefined): { user: string, password: string } | null {
  const match = /^Basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i.exec(header ?? '')
  if (!match) return null
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) return null
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}

/**
 * Checks `Authorization: Basic …` against one user and password. Both sides are hashed to
 * fixed-length digests and both comparisons always run, so the time says nothing about which
 * part was wrong or how long either secret is.
 */
export function createBasicCheck (user: string, password: string): (header: string | undefined) => boolean {
  if (!user || !password) throw new Error('basic auth needs a non-empty user and password')
  const expectedUser = digest(user)
  const expectedPassword = digest(password)
  return (header) => {
    const presented = parseBasic(header)
    const userOk = timingSafeEqual(digest(presented?.user ?? ''), expectedUser)
    const passwordOk = timingSafeEqual(digest(presented?.password ?? ''), expectedPassword)
    return userOk && passwordOk && presented !== null
  }
}
