import { setTimeout as sleep } from 'node:timers/promises'
import { accountsStream, type AccountsOptions } from './accounts.ts'
import { seeded } from './random.ts'

export { percentile, seeded } from './random.ts'

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
export interface SimulatorOptions extends Partial<AccountsOptions> {
  /** The webhook, or several (web replicas behind a load balancer). */
  url: string | readonly string[]
  token: string
  /** What is committed, in commit order; by default the accounts stream (accounts.ts) the other options describe. */
  changes?: ChangeSource
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
  /** Commits at most this many changes a second (default: as fast as batches ask for them). */
  commitsPerSecond?: number
  /** Sequin's per-message backoff: `baseMs` × 2^(n−1), at most `maxMs` (default 20 ms and 400 ms: Sequin's 1 s and 10 min, scaled down for tests). */
  backoff?: { baseMs: number, maxMs: number }
  /** A request unanswered after this long counts as a timeout (Sequin's ack_wait_ms: 30 s). */
  requestTimeoutMs?: number
  timeoutMs?: number
  random?: () => number
  /** Updated while the simulation runs, for a test that acts at a point of it. */
  live?: LiveProgress
}

export interface LiveProgress {
  /** Changes committed so far (sendable). */
  committed: number
  acked: number
  requests: number
  /** Messages sent again after a failed request or a lost ack. */
  redeliveries: number
  /** Requests in flight, per URL. */
  inFlight: number[]
}

export function liveProgress (): LiveProgress {
  return { committed: 0, acked: 0, requests: 0, redeliveries: 0, inFlight: [] }
}

/** The next committed change, or undefined once the stream has no more. */
export type ChangeSource = () => SimulatedMessage | undefined

export interface SimulatedMessage {
  row: number
  /** Sequin's message group (its table and primary key): one message of a group in flight at a time. */
  group: string
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

const RETRYABLE = new Set([408, 429, 500, 502, 503, 504])

export async function simulateSequin (options: SimulatorOptions): Promise<SimulatorResult> {
  const random = options.random ?? seeded(42)
  const urls = typeof options.url === 'string' ? [options.url] : [...options.url]
  const batchSize = options.batchSize ?? 20
  const concurrency = options.concurrency ?? 4
  const backoff = options.backoff ?? { baseMs: 20, maxMs: 400 }
  const started = Date.now()
  const deadline = started + (options.timeoutMs ?? 60_000)
  const commitUntil = options.sendForMs === undefined ? Infinity : started + options.sendForMs
  const nextCommit = options.changes ?? accountsStream(options as AccountsOptions, random)
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
  const byRow = new Map<string, SimulatedMessage[]>()
  const inFlightRows = new Set<string>()
  let inFlight = 0
  let turn = 0
  const deliveries = new Set<Promise<void>>()

  const commit = (): SimulatedMessage | undefined => {
    if (logDone || Date.now() > commitUntil) return undefined
    if (options.commitsPerSecond !== undefined && live.committed >= ((Date.now() - started) / 1000) * options.commitsPerSecond) return undefined
    const message = nextCommit()
    if (!message) {
      logDone = true
      return undefined
    }
    result.messages.push(message)
    pending.push(message)
    unacked++
    live.committed++
    const row = byRow.get(message.group)
    if (row) row.push(message)
    else byRow.set(message.group, [message])
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
      if (message.deliveries > 0) {
        result.redeliveries++
        live.redeliveries++
      }
      message.deliveries++
      if (byRow.get(message.group)!.some((m) => m.lsn < message.lsn && !m.acked)) result.overtakes++
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
      live.redeliveries += batch.length
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
        // Sequin: about 1 s × 2^(n−1) with ±15 % jitter, at most 10 min; scaled down by default to keep tests short.
        message.visibleAt = Date.now() + Math.min(backoff.baseMs * 2 ** (message.deliveries - 1), backoff.maxMs) * (0.85 + random() * 0.3)
      }
      inFlightRows.delete(message.group)
    }
    inFlight--
  }

  /** Sequin's scan: in commit order; a message in backoff is skipped without taking its row. */
  const nextBatch = (): SimulatedMessage[] => {
    const now = Date.now()
    const picked = new Set<string>()
    const batch: SimulatedMessage[] = []
    const take = (message: SimulatedMessage) => {
      if (message.acked || message.visibleAt > now) return
      if (inFlightRows.has(message.group) || picked.has(message.group)) return
      picked.add(message.group)
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
      for (const message of batch) inFlightRows.add(message.group)
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
