import { STATUS_CODES } from 'node:http'
import { resolveTokens } from '../runtime/tokens.ts'
import { CliError, type Session } from './session.ts'

export const WEBHOOK_PATH = '/webhooks/sequin'
export const DRY_RUN_PATH = `${WEBHOOK_PATH}/dry-run`

/**
 * The URL of one of the service's routes: `--url` names the service (`http://host:port`, the path
 * then added) or the route itself; without it, this machine's service on PORT.
 */
export function serviceUrl (session: Session, url: string | undefined, path: string): string {
  const base = url ?? `http://127.0.0.1:${session.config().PORT}`
  let parsed: URL
  try {
    parsed = new URL(base)
  } catch {
    throw new CliError(`--url: not a URL: "${base}"`)
  }
  if (parsed.pathname === '/' || parsed.pathname === '') return new URL(path, parsed).href
  // The webhook's URL where the dry-run route was meant: its own path below it.
  if (path === DRY_RUN_PATH && parsed.pathname.replace(/\/$/, '') === WEBHOOK_PATH) return `${parsed.href.replace(/\/$/, '')}/dry-run`
  return parsed.href
}

/**
 * The token the service accepts, as `npm start` finds it: SEQUIN_WEBHOOK_TOKENS (the first one),
 * or outside production the development token kept under DATA_DIR.
 */
export async function webhookToken (session: Session): Promise<string> {
  const { tokens } = await resolveTokens(session.config())
  return tokens[0]!
}

export interface Answer {
  status: number
  /** The body parsed when it is JSON, its text otherwise. */
  body: unknown
}

/** POSTs a Sequin body as Sequin does (Bearer token, JSON); a connection failure is a CliError. */
export async function postBody (url: string, token: string, text: string, timeoutMs = 30_000): Promise<Answer> {
  let response: Response
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: text,
      signal: AbortSignal.timeout(timeoutMs),
    })
  } catch (error) {
    const cause = (error as { cause?: { code?: string, message?: string } }).cause
    throw new CliError(`cannot reach ${url}: ${cause?.code ?? cause?.message ?? (error as Error).message}`)
  }
  const raw = await response.text()
  let body: unknown = raw
  try {
    body = JSON.parse(raw)
  } catch {}
  return { status: response.status, body }
}

export function statusLine (status: number): string {
  return `${status} ${STATUS_CODES[status] ?? ''}`.trim()
}

export const isSuccess = (status: number) => status >= 200 && status < 300
