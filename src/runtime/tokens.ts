import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { ConfigError, type Config } from '../config.ts'
import { readOrCreateSecret } from './secret-file.ts'

export interface Tokens {
  tokens: string[]
  /** Set when the token was generated for development and kept under DATA_DIR. */
  generatedFile?: string
}

export const TOKEN_REQUIRED = 'SEQUIN_WEBHOOK_TOKENS is required with NODE_ENV=production: generate one with ' +
  '"openssl rand -base64 32" and configure the same value in Sequin as an encrypted Authorization header'

/**
 * The webhook is never open. Production must configure SEQUIN_WEBHOOK_TOKENS; elsewhere a
 * token is generated once and kept under DATA_DIR so restarts keep working with Sequin.
 */
export async function resolveTokens (config: Pick<Config, 'SEQUIN_WEBHOOK_TOKENS' | 'NODE_ENV' | 'DATA_DIR'>): Promise<Tokens> {
  if (config.SEQUIN_WEBHOOK_TOKENS.length > 0) return { tokens: [...config.SEQUIN_WEBHOOK_TOKENS] }
  if (config.NODE_ENV === 'production') throw new ConfigError(TOKEN_REQUIRED)
  const file = join(config.DATA_DIR, 'webhook-token')
  // Written atomically: `npm start` and a second process started with it must agree on the token.
  const token = await readOrCreateSecret(file, () => randomBytes(32).toString('base64url'))
  return { tokens: [token], generatedFile: file }
}

/** What a newcomer pastes into Sequin and into a shell. Printed, never logged. */
export function tokenBanner (token: string, file: string, port: number): string {
  const base = `http://localhost:${port}`
  return `
changeflow: no SEQUIN_WEBHOOK_TOKENS set, so this development token is in use (kept in ${file}):

  ${token}

Point Sequin at changeflow (sequin.yaml; use an address Sequin can reach):

  http_endpoints:
    - name: "changeflow"
      url: "${base}"
      encrypted_headers:
        - key: "Authorization"
          value: "Bearer ${token}"
  sinks:
    - name: "changeflow"
      database: "<your-database>"
      table: "public.orders"
      batch_size: 100
      destination:
        type: "webhook"
        http_endpoint: "changeflow"
        http_endpoint_path: "/webhooks/sequin"
        batch: true

Or send a test batch:

  curl -sS -X POST ${base}/webhooks/sequin \\
    -H "Authorization: Bearer ${token}" -H "content-type: application/json" \\
    --data @test/fixtures/batch-orders-update-paid.json
`
}
