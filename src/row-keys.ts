import { createHmac } from 'node:crypto'
import type { Config } from './config.ts'

/**
 * A row's primary key as log lines show it under LOG_ROW_KEYS=hash: HMAC-SHA256 of the table
 * (`schema.table`) and the key's values as Sequin sends them (`record_pks`), keyed with
 * LOG_ROW_KEY_SECRET. Keyed, because primary keys are guessable (a sequence, an email): a plain
 * hash of one is found by hashing candidates. The same row always gets the same text, so logs
 * can be searched for it by whoever holds the secret.
 */
export function rowKeyHash (secret: string, table: string, key: readonly string[]): string {
  return createHmac('sha256', secret).update(JSON.stringify([table, key])).digest('base64url').slice(0, 22)
}

/** The fields a log line carries for a row's key: `key` itself, or `keyHash` in its place. */
export type RowKeyFields = (table: string, key: readonly string[]) => { key: readonly string[] } | { keyHash: string }

export function rowKeyFields (config: Pick<Config, 'LOG_ROW_KEYS' | 'LOG_ROW_KEY_SECRET'>): RowKeyFields {
  const secret = config.LOG_ROW_KEY_SECRET
  if (config.LOG_ROW_KEYS === 'plain') return (_table, key) => ({ key })
  // Refused at start (preflight) before a worker could get here without one.
  if (!secret) throw new Error('LOG_ROW_KEYS=hash needs LOG_ROW_KEY_SECRET')
  return (table, key) => ({ keyHash: rowKeyHash(secret, table, key) })
}
