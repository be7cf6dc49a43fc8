import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Keyspace } from '../keys.ts'
import { reconcileRows } from '../operations/rows.ts'
import type { ScriptedRedis } from '../redis/scripts.ts'

/**
 * Every `intervalMs`, one worker replica (whoever takes the lock) checks rows whose head has
 * not moved for an interval, so that a run whose job was removed does not block its row.
 */
export function startReconciler (redis: ScriptedRedis, keys: Keyspace, intervalMs: number, recordTtlMs: number, log: Logger): { stop (): void } {
  const me = randomUUID()
  let running = false
  const sweep = async () => {
    if (running || redis.status !== 'ready') return
    running = true
    try {
      const lock = await redis.set(`${keys.own}:reconcile-lock`, me, 'PX', intervalMs, 'NX')
      if (lock !== 'OK') return
      const counts = await reconcileRows(redis, keys, intervalMs, recordTtlMs)
      if (counts.discarded > 0 || counts.started > 0) log.warn(counts, 'rows moved on: a head run whose job was removed was discarded')
    } catch (error) {
      log.warn({ err: error }, 'row reconciliation failed; it runs again next interval')
    } finally {
      running = false
    }
  }
  const timer = setInterval(() => { sweep().catch(() => {}) }, intervalMs)
  timer.unref()
  return { stop: () => clearInterval(timer) }
}
