import { setTimeout as sleep } from 'node:timers/promises'

/**
 * Sends changes the way Sequin's HTTP sink does (sequin-http-sink.md, c.1–c.7): batches of
 * distinct rows, at most one message of a row in flight, any non-2xx retried with per-message
 * exponential backoff and re-batched with other messages, and a message in backoff does not
 * hold its row back (so a later change can overtake it). Lost acks make a delivered batch
 * count as failed, so it is delivered again: duplicates.
 *
 * With several URLs it stands for Sequin behind a load balancer: requests go to each URL in
 * turn, and a failed request is retried against the next one.
 */
export interface SimulatorOptions {
  /** The webhook, or several (web replicas behind a load balancer). */
  url: string | readonly string[]
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
  /**
   * Sequin's immediate retry (Req, about 0.5 s; scaled down to this many ms): a request that
   * failed with a connection error, a timeout, 408, 429 or 5xx is sent once more, to the next
   * URL. Off when unset: failed messages only back off.
   */
  immediateRetryMs?: number
  /** Changes are committed (become sendable) only during this many ms; those already committed are delivered until acknowledged. */
  sendForMs?: number
  /** Pads each record with a text column so that a message is about this many bytes of JSON. */
  messageBytes?: number
  /** A request unanswered after this long counts as a timeout (Sequin's ack_wait_ms: 30 s). */
  requestTimeoutMs?: number
  timeoutMs?: number
  /** First row id, so that runs of one test do not share rows. */
  firstRow?: number
  random?: () => number
  /** Updated while the simulation runs, for a test that acts at a point of it. */
  live?: LiveProgress
}

export interface LiveProgress {
  acked: number
  requests: number
  /** Requests in flight, per URL. */
  inFlight: number[]
}

export function liveProgress (): LiveProgress {
  return { acked: 0, requests: 0, inFlight: [] }
}

export interface SimulatedMessage {
  row: number
  seq: number
  lsn: number
  /** The Sequin message (the simulator's own build it on each read: large runs hold no bodies). */
  body: Record<string, unknown>
  deliveries: number
  visibleAt: number
  acked: boolean
  /** The URL its last failed request went to: its next one goes to the following URL. */
  failedUrl?: number
}

export interface SimulatorResult {
  messages: SimulatedMessage[]
  requests: number
  failedRequests: number
  lostAcks: number
  redeliveries: number
  /** Messages delivered while an older change of the same row was still unacknowledged. */
  overtakes: number
  /** Immediate retries sent (immediateRetryMs); their messages count as redeliveries too. */
  immediateRetries: number
  /** Per answer: the status, or `connection error` / `timeout`. */
  statuses: Record<string, number>
  /** 503 answers without a Retry-After header (Sequin would retry them at once). */
  unavailableWithoutRetryAfter: number
  /** Milliseconds from sending a request to the end of its 2xx answer, per acknowledged request, by batch size (messages in the request). */
  ackLatencies: Map<number, number[]>
  requestsByUrl: number[]
  failedByUrl: number[]
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

/** The p-th percentile (0–100) of `values`, nearest rank; 0 for none. */
export function percentile (values: readonly number[], p: number): number {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

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
function commitLog (options: SimulatorOptions, random: () => number): () => SimulatedMessage | undefined {
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
    const message = { row: first + r, seq, lsn: ++lsnBase, deliveries: 0, visibleAt: 0, acked: false } as SimulatedMessage
    Object.defineProperty(message, 'body', { get: () => sequinBody(message, options.table, committedAt, padding), enumerable: false })
    return message
  }
}

const RETRYABLE = new Set([408, 429, 500, 502, 503, 504])

export async function simulateSequin (options: SimulatorOptions): Promise<SimulatorResult> {
  const random = options.random ?? seeded(42)
  const urls = typeof options.url === 'string' ? [options.url] : [...options.url]
  const batchSize = options.batchSize ?? 20
  const concurrency = options.concurrency ?? 4
  const started = Date.now()
  const deadline = started + (options.timeoutMs ?? 60_000)
  const commitUntil = options.sendForMs === undefined ? Infinity : started + options.sendForMs
  const nextCommit = commitLog(options, random)
  const live = options.live ?? liveProgress()
  live.inFlight = urls.map(() => 0)
  const result: SimulatorResult = {
    messages: [],
    requests: 0,
    failedRequests: 0,
    lostAcks: 0,
    redeliveries: 0,
    overtakes: 0,
    immediateRetries: 0,
    statuses: {},
    unavailableWithoutRetryAfter: 0,
    ackLatencies: new Map(),
    requestsByUrl: urls.map(() => 0),
    failedByUrl: urls.map(() => 0),
    elapsedMs: 0,
  }
  /** Committed and not yet acknowledged, in commit order (acknowledged ones are swept out lazily). */
  let pending: SimulatedMessage[] = []
  let unacked = 0
  let logDone = false
  const byRow = new Map<number, SimulatedMessage[]>()
  const inFlightRows = new Set<number>()
  let inFlight = 0
  let turn = 0
  const deliveries = new Set<Promise<void>>()

  const commit = (): SimulatedMessage | undefined => {
    if (logDone || Date.now() > commitUntil) return undefined
    const message = nextCommit()
    if (!message) {
      logDone = true
      return undefined
    }
    result.messages.push(message)
    pending.push(message)
    unacked++
    const row = byRow.get(message.row)
    if (row) row.push(message)
    else byRow.set(message.row, [message])
    return message
  }

  /** One HTTP request; true when it was answered 2xx (and the ack was not lost). */
  const send = async (batch: SimulatedMessage[], url: number): Promise<{ ok: boolean, retryable: boolean }> => {
    result.requests++
    live.requests++
    result.requestsByUrl[url]!++
    live.inFlight[url]!++
    const sentAt = performance.now()
    let status: string
    let ok = false
    let retryable = true
    try {
      if (random() < (options.dropRate ?? 0)) throw new Error('connection reset (simulated)')
      const response = await fetch(urls[url]!, {
        method: 'POST',
        headers: { authorization: `Bearer ${options.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ data: batch.map((m) => m.body) }),
        signal: AbortSignal.timeout(options.requestTimeoutMs ?? 30_000),
      })
      await response.arrayBuffer()
      status = String(response.status)
      if (response.status === 503 && !response.headers.get('retry-after')) result.unavailableWithoutRetryAfter++
      ok = response.status >= 200 && response.status < 300
      retryable = RETRYABLE.has(response.status)
      if (ok) {
        const latencies = result.ackLatencies.get(batch.length) ?? []
        latencies.push(performance.now() - sentAt)
        result.ackLatencies.set(batch.length, latencies)
      }
      if (ok && random() < (options.lostAckRate ?? 0)) {
        ok = false
        result.lostAcks++
      }
    } catch (error) {
      status = (error as Error).name === 'TimeoutError' ? 'timeout' : 'connection error'
    }
    live.inFlight[url]!--
    result.statuses[status] = (result.statuses[status] ?? 0) + 1
    if (!ok) {
      result.failedRequests++
      result.failedByUrl[url]!++
    }
    return { ok, retryable }
  }

  const deliver = async (batch: SimulatedMessage[]) => {
    for (const message of batch) {
      if (message.deliveries > 0) result.redeliveries++
      message.deliveries++
      if (byRow.get(message.row)!.some((m) => m.lsn < message.lsn && !m.acked)) result.overtakes++
    }
    // A retried message goes to the URL after the one that failed it; others take turns.
    const failed = batch.find((m) => m.failedUrl !== undefined)?.failedUrl
    let url = failed === undefined ? turn++ % urls.length : (failed + 1) % urls.length
    let outcome = await send(batch, url)
    if (!outcome.ok && outcome.retryable && options.immediateRetryMs !== undefined) {
      await sleep(options.immediateRetryMs)
      url = (url + 1) % urls.length
      result.immediateRetries++
      result.redeliveries += batch.length
      outcome = await send(batch, url)
    }
    for (const message of batch) {
      if (outcome.ok) {
        message.acked = true
        message.failedUrl = undefined
        unacked--
        live.acked++
      } else {
        message.failedUrl = url
        // Sequin: about 1 s × 2^(n−1) with ±15 % jitter; scaled down to keep the test short.
        message.visibleAt = Date.now() + Math.min(20 * 2 ** (message.deliveries - 1), 400) * (0.85 + random() * 0.3)
      }
      inFlightRows.delete(message.row)
    }
    inFlight--
  }

  /** Sequin's scan: in commit order; a message in backoff is skipped without taking its row. */
  const nextBatch = (): SimulatedMessage[] => {
    const now = Date.now()
    const picked = new Set<number>()
    const batch: SimulatedMessage[] = []
    const take = (message: SimulatedMessage) => {
      if (message.acked || message.visibleAt > now) return
      if (inFlightRows.has(message.row) || picked.has(message.row)) return
      picked.add(message.row)
      batch.push(message)
    }
    if (pending.length > 2 * unacked + 64) pending = pending.filter((m) => !m.acked)
    for (const message of pending) {
      if (batch.length >= batchSize) break
      take(message)
    }
    // Newly committed changes join the scan as Sequin's store receives them.
    for (let tries = 0; batch.length < batchSize && tries < batchSize + 64; tries++) {
      const message = commit()
      if (!message) break
      take(message)
    }
    return batch
  }

  // Without a sending window every change is in Sequin's store from the start, as after an outage.
  if (options.sendForMs === undefined) while (commit());
  const finished = () => unacked === 0 && (logDone || Date.now() > commitUntil)
  while (!finished()) {
    if (Date.now() > deadline) {
      await Promise.all(deliveries)
      throw new Error(`simulator timed out with ${unacked} messages unacknowledged (statuses ${JSON.stringify(result.statuses)})`)
    }
    const batch = inFlight < concurrency ? nextBatch() : []
    if (batch.length > 0) {
      for (const message of batch) inFlightRows.add(message.row)
      inFlight++
      const delivery = deliver(batch).catch(() => {}).finally(() => deliveries.delete(delivery))
      deliveries.add(delivery)
      if (inFlight >= concurrency) await sleep(1)
    } else {
      await sleep(2)
    }
  }
  await Promise.all(deliveries)
  result.elapsedMs = Date.now() - started
  return result
}
