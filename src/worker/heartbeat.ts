import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Keyspace } from '../keys.ts'
import { heartbeat, registerQueues } from '../runs/orphans.ts'

/**
 * Says, every `intervalMs`, that this process consumes `queues` (valid for three intervals, so a
 * missed beat or two is no gap). A queue with work and no such word is orphaned: see runs/orphans.ts.
 */
export function startHeartbeat (redis: Redis, keys: Keyspace, queues: readonly string[], intervalMs: number, log: Logger): { stop (): void } {
  let failing = false
  const beat = async () => {
    if (redis.status !== 'ready') return
    try {
      await heartbeat(redis, keys, queues, intervalMs * 3)
      failing = false
    } catch (error) {
      if (!failing) log.warn({ err: error }, 'worker heartbeat failed; it is retried every interval')
      failing = true
    }
  }
  registerQueues(redis, keys, queues).catch(() => {}) // the first beat's connection error is reported there
  beat().catch(() => {})
  const timer = setInterval(() => { beat().catch(() => {}) }, intervalMs)
  timer.unref()
  return { stop: () => clearInterval(timer) }
}
