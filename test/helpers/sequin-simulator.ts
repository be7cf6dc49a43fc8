import { setTimeout as sleep } from 'node:timers/promises'

/**
 * Sends changes the way Sequin's HTTP sink does (sequin-http-sink.md, c.1–c.7): batches of
 * distinct rows, at most one message of a row in flight, any non-2xx retried with per-message
 * exponential backoff and re-batched with other messages, and a message in backoff does not
 * hold its row back (so a later change can overtake it). Lost acks make a delivered batch
 * count as failed, so it is delivered again: duplicates.
 */
export interface SimulatorOptions {
  url: string
  token: string
  table: string
  rows: number
  changesPerRow: number
  batchSize?: number
  concurrency?: number
  /** Share of 2xx answers treated as lost: the batch is redelivered. */
  lostAckRate?: number
  /** Share of requests that fail before reaching the server (connection errors). */
  dropRate?: number
  timeoutMs?: number
  /** First row id, so that runs of one test do not share rows. */
  firstRow?: number
  random?: () => number
}

export interface SimulatedMessage {
  row: number
  seq: number
  lsn: number
  body: Record<string, unknown>
  deliveries: number
  visibleAt: number
  acked: boolean
}

export interface SimulatorResult {
  messages: SimulatedMessage[]
  requests: number
  failedRequests: number
  lostAcks: number
  redeliveries: number
  /** Messages delivered while an older change of the same row was still unacknowledged. */
  overtakes: number
  elapsedMs: number
}

let lsnBase = 1_000_000

/** A small seeded generator (mulberry32), so that a failing run can be repeated. */
export function seeded (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function buildMessages (options: SimulatorOptions, random: () => number): SimulatedMessage[] {
  const first = options.firstRow ?? 1
  const next = new Array<number>(options.rows).fill(0)
  const messages: SimulatedMessage[] = []
  // A commit log interleaving the rows at random, each row's changes in sequence.
  while (messages.length < options.rows * options.changesPerRow) {
    const r = Math.floor(random() * options.rows)
    if (next[r]! >= options.changesPerRow) continue
    const seq = next[r]!++
    const lsn = ++lsnBase
    const row = first + r
    messages.push({
      row,
      seq,
      lsn,
      deliveries: 0,
      visibleAt: 0,
      acked: false,
      body: {
        action: seq === 0 ? 'insert' : 'update',
        record: { id: row, seq, balance: seq * 10 },
        changes: seq === 0 ? null : { seq: seq - 1, balance: (seq - 1) * 10 },
        metadata: {
          table_schema: 'public',
          table_name: options.table,
          commit_timestamp: new Date().toISOString(),
          commit_lsn: lsn,
          commit_idx: 0,
          idempotency_key: Buffer.from(`${lsn}:0`).toString('base64'),
          record_pks: [String(row)],
          database: { id: 'sim-db', name: 'sim', database: 'sim', hostname: 'localhost', annotations: {} },
          consumer: { id: 'sim-sink', name: 'sim', annotations: {} },
        },
      },
    })
  }
  return messages
}

export async function simulateSequin (options: SimulatorOptions): Promise<SimulatorResult> {
  const random = options.random ?? seeded(42)
  const batchSize = options.batchSize ?? 20
  const concurrency = options.concurrency ?? 4
  const deadline = Date.now() + (options.timeoutMs ?? 60_000)
  const messages = buildMessages(options, random)
  const inFlightRows = new Set<number>()
  const result: SimulatorResult = { messages, requests: 0, failedRequests: 0, lostAcks: 0, redeliveries: 0, overtakes: 0, elapsedMs: 0 }
  const started = Date.now()
  let inFlight = 0
  const pending = new Set<Promise<void>>()

  const fail = (batch: SimulatedMessage[]) => {
    for (const message of batch) {
      // Sequin: about 1 s × 2^(n−1) with ±15 % jitter; scaled down to keep the test short.
      message.visibleAt = Date.now() + Math.min(20 * 2 ** (message.deliveries - 1), 400) * (0.85 + random() * 0.3)
    }
  }

  const deliver = async (batch: SimulatedMessage[]) => {
    result.requests++
    for (const message of batch) {
      if (message.deliveries > 0) result.redeliveries++
      message.deliveries++
      if (messages.some((m) => m.row === message.row && m.lsn < message.lsn && !m.acked)) result.overtakes++
    }
    let ok = false
    try {
      if (random() < (options.dropRate ?? 0)) throw new Error('connection reset (simulated)')
      const response = await fetch(options.url, {
        method: 'POST',
        headers: { authorization: `Bearer ${options.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ data: batch.map((m) => m.body) }),
      })
      await response.arrayBuffer()
      ok = response.status >= 200 && response.status < 300
      if (ok && random() < (options.lostAckRate ?? 0)) {
        ok = false
        result.lostAcks++
      }
    } catch {}
    if (ok) for (const message of batch) message.acked = true
    else {
      result.failedRequests++
      fail(batch)
    }
    for (const message of batch) inFlightRows.delete(message.row)
    inFlight--
  }

  while (messages.some((m) => !m.acked)) {
    if (Date.now() > deadline) throw new Error(`simulator timed out with ${messages.filter((m) => !m.acked).length} messages unacknowledged`)
    const now = Date.now()
    const picked = new Set<number>()
    const batch: SimulatedMessage[] = []
    // Sequin's scan: in commit order; a message in backoff is skipped without taking its row.
    for (const message of messages) {
      if (batch.length >= batchSize || inFlight >= concurrency) break
      if (message.acked || message.visibleAt > now) continue
      if (inFlightRows.has(message.row) || picked.has(message.row)) continue
      picked.add(message.row)
      batch.push(message)
    }
    if (batch.length > 0) {
      for (const message of batch) inFlightRows.add(message.row)
      inFlight++
      const delivery = deliver(batch).catch(() => {}).finally(() => pending.delete(delivery))
      pending.add(delivery)
    } else {
      await sleep(2)
    }
    if (batch.length > 0 && inFlight >= concurrency) await sleep(1)
  }
  await Promise.all(pending)
  result.elapsedMs = Date.now() - started
  return result
}
