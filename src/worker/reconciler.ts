import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Keyspace } from '../keys.ts'
import { clearStaleOrphans, markOrphanedRows, orphanedQueues } from '../runs/orphans.ts'
import { reconcileRows } from '../runs/rows.ts'
import type { ScriptedRedis } from '../redis/scripts.ts'

/**
 * Every `intervalMs`, one worker replica (whoever takes the lock) checks rows whose head has
 * not moved for an interval, so that a run whose job was removed does not block its row, and
 * counts rows whose head waits in a queue no worker consumes as blocked.
 */
export function startReconciler (redis: ScriptedRedis, keys: Keyspace, intervalMs: number, recordTtlMs: number, log: Logger): { stop (): void } {
  const me = randomUUID()
  let running = false
  const reported = new Set<string>()
  const sweep = async () => {
    if (running || redis.status !== 'ready') return
    running = true
    try {
      const lock = await redis.set(`${keys.own}:reconcile-lock`, me, 'PX', intervalMs, 'NX')
      if (lock !== 'OK') return
      const { errors, ...counts } = await reconcileRows(redis, keys, intervalMs, recordTtlMs)
      if (counts.discarded > 0 || counts.started > 0) log.warn(counts, 'rows moved on: a head run whose job was removed was discarded')
      if (errors.length > 0) log.error({ errors: errors.slice(0, 10), count: errors.length }, 'rows could not be reconciled; the others were')
      const orphaned = (await orphanedQueues(redis, keys)).map((work) => work.queue)
      const marked = await markOrphanedRows(redis, keys, orphaned)
      await clearStaleOrphans(redis, keys, new Set(orphaned))
      for (const queue of orphaned) {
        if (reported.has(queue)) continue
        reported.add(queue)
        log.error({ queue, rowsMarked: marked },
          `queue ${queue} holds work that no worker consumes: its rows are blocked. Run a worker that defines it, or npm run cli -- discard-workflow ${queue}`)
      }
      for (const queue of reported) if (!orphaned.includes(queue)) reported.delete(queue)
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
