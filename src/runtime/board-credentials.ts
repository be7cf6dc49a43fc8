import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { readOrCreateSecret } from './secret-file.ts'

export interface BoardCredentialsConfig {
  BOARD_USERNAME?: string
  BOARD_PASSWORD?: string
  NODE_ENV: string
  DATA_DIR: string
}

export type BoardCredentials =
  | { enabled: false, reason: string }
  | {
    enabled: true
    username: string
    password: string
    /** Set when the password was generated for development and kept under DATA_DIR. */
    generatedFile?: string
  }

export const DEFAULT_BOARD_USERNAME = 'admin'

/**
 * The dashboard is never open. Production without BOARD_PASSWORD leaves it off (the webhook
 * still runs: the caller logs the reason); elsewhere a password is generated once and kept
 * under DATA_DIR, like the webhook token, so a restart does not log the operator out.
 */
export async function resolveBoardCredentials (config: BoardCredentialsConfig): Promise<BoardCredentials> {
  const username = config.BOARD_USERNAME?.trim() || DEFAULT_BOARD_USERNAME
  const configured = config.BOARD_PASSWORD?.trim()
  if (configured) return { enabled: true, username, password: configured }
  if (config.NODE_ENV === 'production') {
    return {
      enabled: false,
      reason: 'the dashboard (/admin/queues) is off: set BOARD_PASSWORD (and optionally BOARD_USERNAME) to enable it with NODE_ENV=production',
    }
  }
  const file = join(config.DATA_DIR, 'board-password')
  const password = await readOrCreateSecret(file, () => randomBytes(24).toString('base64url'))
  return { enabled: true, username, password, generatedFile: file }
}

/**
 * Where to log in, printed (never logged) at start. A generated development password is shown,
 * like the generated webhook token; a configured one never is.
 */
export function boardBanner (credentials: { username: string, password?: string, generatedFile?: string }, port: number, basePath = '/admin/queues'): string {
  const where = credentials.generatedFile
    ? `password ${credentials.password ?? ''}, kept in ${credentials.generatedFile}`
    : 'the password in BOARD_PASSWORD'
  return `changeflow: dashboard at http://localhost:${port}${basePath} (user "${credentials.username}", ${where})`
}
