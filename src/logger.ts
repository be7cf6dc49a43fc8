import pino, { type Logger } from 'pino'
import type { Config } from './config.ts'

/** Secrets never reach a log line, whichever object they ride in on. */
export const REDACT = [
  'req.headers.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'authorization',
  'token',
  'tokens',
  'password',
  'SEQUIN_WEBHOOK_TOKENS',
  'BOARD_PASSWORD',
]

export function createLogger (config: Pick<Config, 'LOG_LEVEL'>, destination?: pino.DestinationStream): Logger {
  return pino({ level: config.LOG_LEVEL, redact: { paths: REDACT, censor: '[redacted]' } }, destination)
}
