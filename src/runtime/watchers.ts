import { Queue } from 'bullmq'
import type { RedisClient } from '../redis/connection.ts'
import type { Logger } from 'pino'
import { QUARANTINE_QUEUE, type Layout } from '../keys.ts'
import { PENDING_STATES, queueWork } from '../runs/orphans.ts'

export interface Watcher {
  /** Checks now (start-up, and after every interval); never rejects. */
  check (): Promise<void>
  stop (): void
}

function every (intervalMs: number, check: () => Promise<void>): Watcher {
  const timer = setInterval(() => { check().catch(() => {}) }, intervalMs)
  timer.unref()
  return { check, stop: () => clearInterval(timer) }
}

/**
 * Finds queues holding work of workflows this release does not define (renamed or removed in a
 * deploy) and hands each to `found` once, as a Queue on `redis`: the dashboard and the metrics
 * then show them. The first check also logs what it found.
 */
export function watchForeignQueues (redis: RedisClient, layout: Layout, own: readonly string[], intervalMs: number, log: Logger, found: (queue: Queue) => void): Watcher {
  const known = new Set([...own, QUARANTINE_QUEUE])
  return every(intervalMs, async () => {
    try {
      for (const work of await queueWork(redis, layout)) {
        if (known.has(`${work.shard}/${work.queue}`) || known.has(work.queue)) continue
        known.add(`${work.shard}/${work.queue}`)
        const queue = new Queue(work.queue, { connection: redis, prefix: layout.shards[work.shard]!.bullPrefix })
        queue.on('error', (error) => log.warn({ queue: work.queue, err: error }, 'dashboard queue error'))
        found(queue)
      }
    } catch (error) {
      log.warn({ err: error }, 'could not look for queues of workflows this release does not define')
    }
  })
}

/**
 * How full the quarantine is, for /readyz: past QUARANTINE_LIMIT a batch holding an invalid
 * message is refused, and an operator should redrive or drop quarantined messages.
 */
export function watchQuarantine (quarantine: Queue, limit: number, intervalMs: number, log: Logger): Watcher & { warnings (): string[] } {
  let held = 0
  let logged = false
  const watcher = every(intervalMs, async () => {
    try {
      const counts = await quarantine.getJobCounts(...PENDING_STATES)
      held = Object.values(counts).reduce((sum, n) => sum + n, 0)
      const full = held >= limit
      if (full && !logged) log.error({ held, limit }, warning(held, limit))
      logged = full
    } catch {} // Redis trouble shows in readiness itself
  })
  const warning = (count: number, max: number) =>
    `quarantine full: ${count} of ${max} messages (QUARANTINE_LIMIT): batches holding an invalid message are refused ` +
    '(422, Sequin retries them) until quarantined messages are redriven (npx changeflow redrive) or removed'
  return { ...watcher, warnings: () => (held >= limit ? [warning(held, limit)] : []) }
}
