import { hash } from 'node:crypto'
import type { SequinMetadata } from '../sequin/message.ts'

function digest (...parts: string[]): string {
  // 132 bits of SHA-256 in base64url: URL-safe, never ':' and never all digits once prefixed.
  return hash('sha256', parts.join('\n'), 'base64url').slice(0, 22)
}

/**
 * A change is (source database, idempotency key): two sinks on one database deliver the same
 * change with the same key, so it must start its workflows once. Old servers without
 * `idempotency_key` get the key Sequin itself derives: base64 of `lsn:idx`.
 */
export function changeIdentity (metadata: SequinMetadata): { source: string, key: string } {
  const source = metadata.database?.id ?? metadata.database_name ?? metadata.database?.name ?? ''
  const key = metadata.idempotency_key ??
    Buffer.from(`${metadata.commit_lsn}:${metadata.commit_idx}`).toString('base64')
  return { source, key }
}

export function changeId (metadata: SequinMetadata): string {
  const { source, key } = changeIdentity(metadata)
  return digest('change', source, key)
}

/** A change's content, as its JSON: two messages with one identity but other contents differ here. */
export function contentFingerprint (changeJson: string): string {
  return hash('sha1', changeJson, 'base64url')
}

export function runId (change: string, workflow: string): string {
  return digest('run', change, workflow)
}

/**
 * One row of one table of one source: the unit of per-row ordering. A primary key and a
 * workflow's own `key` with the same values are different rows, and so are `"a.b"."c"` and
 * `"a"."b.c"` (schema and table are kept apart, not joined with a dot).
 */
export function rowId (source: string, schema: string, table: string, kind: 'pk' | 'key', key: readonly string[]): string {
  return digest('row', source, JSON.stringify([schema, table]), kind, JSON.stringify(key))
}

/**
 * A row in the change journal's index: a table name and primary key, of any schema and source,
 * so that an operator finds it from what they know (`trace orders 42`).
 */
export function journalRowId (table: string, key: readonly string[]): string {
  return digest('journal', table, JSON.stringify(key))
}

/**
 * A forced replay's identity for a change: a new change as far as dedup, runs, job ids and
 * idempotency keys go, the same for every attempt of one replay generation.
 */
export function replayChangeId (change: string, generation: number): string {
  return digest('replay', change, String(generation))
}

/** A BullMQ job id: `<step>.<run>`, unique within the workflow's queue. */
export function stepJobId (run: string, step: string): string {
  return `${step}.${run}`
}

/** What a step passes to providers so that a re-run never repeats the side effect. */
export function idempotencyKey (workflow: string, step: string, change: string): string {
  return `changeflow.${workflow}.${step}.${change}`
}

export function quarantineJobId (raw: string): string {
  return `q.${digest('quarantine', raw)}`
}
