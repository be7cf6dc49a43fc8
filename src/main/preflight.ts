import { ConfigError, type Config } from '../config.ts'
import { TOKEN_REQUIRED } from '../runtime/tokens.ts'
import type { Role } from './run.ts'

type PreflightConfig = Pick<Config,
  'NODE_ENV' | 'REDIS_URL' | 'REDIS_CLUSTER_NODES' | 'SEQUIN_WEBHOOK_TOKENS' | 'METRICS_TOKEN' | 'METRICS_PORT' | 'PORT' |
  'LOG_ROW_KEYS' | 'LOG_ROW_KEY_SECRET'>

/**
 * What a role needs before it starts anything, every problem at once: production says where
 * Redis is, and opens neither the webhook nor /metrics without a secret (the dashboard stays off
 * without BOARD_PASSWORD, which runtime/board-credentials.ts decides).
 */
export function preflight (config: PreflightConfig, role: Role): void {
  const problems: string[] = []
  const production = config.NODE_ENV === 'production'
  const serves = role !== 'worker'
  if (production && !config.REDIS_URL && !config.REDIS_CLUSTER_NODES) {
    problems.push('REDIS_URL (or REDIS_CLUSTER_NODES) is required with NODE_ENV=production: changeflow neither falls back to 127.0.0.1:6379 ' +
      'nor starts a private redis-server in production. Point every web and worker process at your Redis, ' +
      'e.g. REDIS_URL=redis://redis.internal:6379')
  }
  if (production && serves && config.SEQUIN_WEBHOOK_TOKENS.length === 0) problems.push(TOKEN_REQUIRED)
  if (production && serves && !config.METRICS_TOKEN && config.METRICS_PORT === undefined) {
    problems.push('METRICS_TOKEN or METRICS_PORT is required with NODE_ENV=production: /metrics would be open to ' +
      'anyone who can reach the webhook. Set METRICS_TOKEN (scrapes send "Authorization: Bearer <token>"), or ' +
      'METRICS_PORT to serve /metrics on a separate port that only Prometheus reaches')
  }
  if (role !== 'web' && config.LOG_ROW_KEYS === 'hash' && !config.LOG_ROW_KEY_SECRET) {
    problems.push(`LOG_ROW_KEY_SECRET is required with LOG_ROW_KEYS=hash${production ? ' (the default with NODE_ENV=production)' : ''}: ` +
      'step logs show each row\'s primary key as an HMAC keyed with it. Generate one with "openssl rand -base64 32" and give every ' +
      'worker the same, or set LOG_ROW_KEYS=plain to log the keys themselves')
  }
  if (serves && config.METRICS_PORT !== undefined && config.METRICS_PORT !== 0 && config.METRICS_PORT === config.PORT) {
    problems.push(`METRICS_PORT must differ from PORT (both ${config.PORT}): metrics are served on their own listener`)
  }
  if (problems.length === 0) return
  const what = role === 'all' ? 'web and worker' : role
  const lines = problems.map((problem) => `  ${problem}`).join('\n')
  throw new ConfigError(`invalid configuration for this ${what} process:\n${lines}`)
}
