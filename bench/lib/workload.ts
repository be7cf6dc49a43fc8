/**
 * Realistic Sequin change messages (the shape of test/fixtures/batch-orders-update-paid.json),
 * each with its own change identity, so that nothing is deduplicated away between measurements.
 */
export type Message = Record<string, unknown> & { metadata: Record<string, unknown> }

export interface Batch {
  /** The request body exactly as Sequin would send it. */
  body: string
  messages: Message[]
}

// Counters across the whole process: every measurement gets fresh changes and fresh rows.
let lastLsn = 30_000_000_000
let lastRow = 0
const epoch = Date.parse('2025-06-12T14:00:00Z')

const database = { annotations: {}, database: 'shop', hostname: 'db.shop.internal', id: '8b2f5c1e-3d4a-4f6b-9c7d-1a2b3c4d5e6f', name: 'shop-prod' }
const consumer = { annotations: {}, id: '3f9c2a71-5b8e-4d06-a1c4-7e2d9f0b6a58', name: 'shop-webhook' }

export function newRow (): number {
  return ++lastRow
}

/** An order of `row` turning paid: an update with REPLICA IDENTITY FULL, as Sequin sends it. */
export function orderPaid (table: string, row: number): Message {
  const lsn = ++lastLsn
  const idx = lsn % 3
  const at = new Date(epoch + (lsn % 86_400_000)).toISOString()
  return {
    action: 'update',
    changes: { paid_at: null, status: 'pending', updated_at: at },
    metadata: {
      commit_idx: idx,
      commit_lsn: lsn,
      commit_timestamp: at,
      consumer,
      database,
      database_name: 'shop-prod',
      enrichment: null,
      idempotency_key: Buffer.from(`${lsn}:${idx}`).toString('base64'),
      record_pks: [String(row)],
      table_name: table,
      table_schema: 'public',
      transaction_annotations: { request_id: `req_${lsn.toString(36)}`, source: 'checkout-service', user_id: row % 997 },
    },
    record: {
      created_at: at,
      currency: 'EUR',
      id: row,
      items_count: 1 + (row % 5),
      metadata: { channel: 'web', coupon: null },
      paid_at: at,
      status: 'paid',
      total_amount: ((row % 50_000) / 100 + 9.9).toFixed(2),
      updated_at: at,
      user_id: row % 997,
    },
  }
}

export function toBatches (messages: readonly Message[], size: number): Batch[] {
  const batches: Batch[] = []
  for (let i = 0; i < messages.length; i += size) {
    const slice = messages.slice(i, i + size)
    batches.push({ body: JSON.stringify({ data: slice }), messages: slice })
  }
  return batches
}

/** Part 1: `count` batches of `size` changes, each on a row of its own. */
export function distinctRowBatches (table: string, count: number, size: number): Batch[] {
  const messages = Array.from({ length: count * size }, () => orderPaid(table, newRow()))
  return toBatches(messages, size)
}

export { seeded } from '../../src/simulate/random.ts'

/**
 * Part 2: `count` changes in commit order, mostly on rows of their own; a `shared` share of them
 * hit a row that an earlier change of the same workload already touched, so that ordering
 * sometimes has to hold a run back.
 */
export function mostlyDistinctRows (table: string, count: number, shared: number, random: () => number): Message[] {
  const used: number[] = []
  const messages: Message[] = []
  for (let i = 0; i < count; i++) {
    const reuse = used.length > 0 && random() < shared
    const row = reuse ? used[Math.floor(random() * used.length)]! : newRow()
    if (!reuse) used.push(row)
    messages.push(orderPaid(table, row))
  }
  return messages
}
