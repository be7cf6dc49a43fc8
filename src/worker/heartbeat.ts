import type { Logger } from 'pino'
import { QUARANTINE_QUEUE, type Layout } from '../keys.ts'
import type { RedisClient } from '../redis/connection.ts'
import { heartbeat, registerQueues, restoreQueues } from '../runs/orphans.ts'

/**
 * Says, every `intervalMs`, that this process consumes `queues` of `shards` (valid for three
 * intervals, so a missed beat or two is no gap). A queue with work and no such word is
 * orphaned: see runs/orphans.ts. At start the queues are registered, and brought back if an
 * operator had given their workflow up.
 */
export function startHeartbeat (redis: RedisClient, layout: Layout, shards: readonly number[], queues: readonly string[], intervalMs: number, log: Logger): { stop (): void } {
  let failing = false
  const workflows = queues.filter((name) => name !== QUARANTINE_QUEUE)
  const beat = async () => {
    if (redis.status !== 'ready') return
    try {
      await heartbeat(redis, layout, shards, workflows, intervalMs * 3)
      // The quarantine lives in shard 0 only.
      if (shards.includes(0) && queues.includes(QUARANTINE_QUEUE)) await heartbeat(redis, layout, [0], [QUARANTINE_QUEUE], intervalMs * 3)
      failing = false
    } catch (error) {
      if (!failing) log.warn({ err: error }, 'worker heartbeat failed; it is retried every interval')
      failing = true
    }
  }
  // The first beat reports a connection error: these two need not.
  registerQueues(redis, layout, queues).then(() => restoreQueues(redis, layout, workflows)).catch(() => {})
  beat().catch(() => {})
  const timer = setInterval(() => { beat().catch(() => {}) }, intervalMs)
  timer.unref()
  return { stop: () => clearInterval(timer) }
}
