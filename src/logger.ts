import pino, { type Logger } from 'pino'
import type { Config } from './config.ts'

const HEADERS = ['authorization', 'Authorization', 'cookie', 'Cookie', 'x-api-key', 'X-Api-Key']

/**
 * Paths redacted at the top level of a log line and one level down. Deeper wildcards would cost
 * every log line (pino redacts each one); errors, where credentials hide deeper, are stripped
 * by their serializer instead.
 */
export const REDACT = [
  ...HEADERS.flatMap((header) => [`headers.${header}`, `*.headers.${header}`]),
  ...['authorization', 'token', 'tokens', 'password', 'secret', 'SEQUIN_WEBHOOK_TOKENS', 'BOARD_PASSWORD', 'METRICS_TOKEN', 'LOG_ROW_KEY_SECRET']
    .flatMap((key) => [key, `*.${key}`]),
]

/**
 * Errors are logged as what went wrong, not as everything they carry: HTTP clients (axios,
 * got, undici) attach the request, its headers and its credentials to the errors they throw.
 */
const CARRIERS = new Set(['config', 'request', 'response', 'headers', 'options', 'req', 'res', 'agent'])
function errorSerializer (error: unknown): unknown {
  const serialized = pino.stdSerializers.err(error as Error) as unknown as Record<string, unknown>
  if (!serialized || typeof serialized !== 'object') return serialized
  for (const key of Object.keys(serialized)) if (CARRIERS.has(key)) delete serialized[key]
  // ioredis attaches the failed command with its arguments: a whole batch of rows, or a Lua
  // script's source. Its name says enough.
  const command = (error as { command?: { name?: unknown } })?.command
  if (command && typeof command === 'object') serialized.command = { name: command.name }
  const status = (error as { response?: { status?: unknown } })?.response?.status
  if (typeof status === 'number') serialized.status = status
  return serialized
}

/** Secrets never reach a log line: redacted by name, and stripped from errors. */
export function createLogger (config: Pick<Config, 'LOG_LEVEL'>, destination?: pino.DestinationStream): Logger {
  return pino({
    level: config.LOG_LEVEL,
    redact: { paths: REDACT, censor: '[redacted]' },
    serializers: { err: errorSerializer },
  }, destination)
}
