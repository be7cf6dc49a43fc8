import type { ChangeSource, SimulatedMessage } from './sequin.ts'

/** The accounts-like stream the fault tests and proofs use: `rows` rows of `table`, `changesPerRow` changes each. */
export interface AccountsOptions {
  table: string
  rows: number
  changesPerRow: number
  /** First row id, so that runs of one test do not share rows. */
  firstRow?: number
  /** Pads each record with a text column so that a message is about this many bytes of JSON. */
  messageBytes?: number
}

let lsnBase = 1_000_000

/** A Sequin change message of the simulated accounts-like tables. */
function sequinBody ({ row, seq, lsn }: SimulatedMessage, table: string, committedAt: number, padding: string): Record<string, unknown> {
  const record: Record<string, unknown> = { id: row, seq, balance: seq * 10 }
  if (padding) record.note = padding
  return {
    action: seq === 0 ? 'insert' : 'update',
    record,
    changes: seq === 0 ? null : { seq: seq - 1, balance: (seq - 1) * 10 },
    metadata: {
      table_schema: 'public',
      table_name: table,
      commit_timestamp: new Date(committedAt).toISOString(),
      commit_lsn: lsn,
      commit_idx: 0,
      idempotency_key: Buffer.from(`${lsn}:0`).toString('base64'),
      record_pks: [String(row)],
      database: { id: 'sim-db', name: 'sim', database: 'sim', hostname: 'localhost', annotations: {} },
      consumer: { id: 'sim-sink', name: 'sim', annotations: {} },
    },
  }
}

/**
 * The commit log: rows interleaved at random, each row's changes in sequence, produced as the
 * simulation asks for them (a one-change-per-row log, as under load, takes rows in order).
 */
export function accountsStream (options: AccountsOptions, random: () => number): ChangeSource {
  if (!options.table || !(options.rows >= 0) || !(options.changesPerRow >= 1)) {
    throw new TypeError('the accounts stream needs table, rows and changesPerRow (or pass changes)')
  }
  const first = options.firstRow ?? 1
  const next = new Map<number, number>()
  const open = options.changesPerRow > 1 ? Array.from({ length: options.rows }, (_, r) => r) : undefined
  let sequential = 0
  const padding = 'x'.repeat(Math.max(0, (options.messageBytes ?? 0) - 560))
  return () => {
    let r: number
    if (open) {
      if (open.length === 0) return undefined
      const at = Math.floor(random() * open.length)
      r = open[at]!
      if ((next.get(r) ?? 0) + 1 >= options.changesPerRow) {
        open[at] = open[open.length - 1]!
        open.pop()
      }
    } else {
      if (sequential >= options.rows) return undefined
      r = sequential++
    }
    const seq = next.get(r) ?? 0
    next.set(r, seq + 1)
    const committedAt = Date.now()
    const message = { row: first + r, group: `${options.table}:${first + r}`, seq, lsn: ++lsnBase, deliveries: 0, visibleAt: 0, acked: false } as SimulatedMessage
    Object.defineProperty(message, 'body', { get: () => sequinBody(message, options.table, committedAt, padding), enumerable: false })
    return message
  }
}
