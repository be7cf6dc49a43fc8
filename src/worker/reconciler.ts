import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Layout } from '../keys.ts'
import type { ScriptedRedis } from '../redis/scripts.ts'
import { clearStaleOrphans, markOrphanedRows, orphanedQueues } from '../runs/orphans.ts'
import { reconcileRows } from '../runs/rows.ts'

/**
 * Every `intervalMs`, for each shard, one worker replica (whoever takes the shard's lock) checks
 * rows whose head has not moved for an interval, so that a run whose job was removed does not
 * block its row, and counts rows whose head waits in a queue no worker consumes as blocked. Every
 * shard, not only those this process consumes (WORKER_SHARDS): a shard no worker consumes is
 * exactly one whose rows must be reported.
 */
export function startReconciler (redis: ScriptedRedis, layout: Layout, intervalMs: number, recordTtlMs: number, log: Logger): { stop (): void } {
  const shards = layout.shards.map((_, shard) => shard)
  const me = randomUUID()
  let running = false
  const reported = new Set<string>()
  const sweepShard = async (shard: number, orphaned: readonly string[]) => {
    const keys = layout.shards[shard]!
    const lock = await redis.set(`${keys.own}:reconcile-lock`, me, 'PX', intervalMs, 'NX')
    if (lock !== 'OK') return
    const { errors, ...counts } = await reconcileRows(redis, keys, intervalMs, recordTtlMs)
    if (counts.discarded > 0 || counts.started > 0) log.warn({ shard, ...counts }, 'rows moved on: a head run whose job was removed was discarded')
    if (errors.length > 0) log.error({ shard, errors: errors.slice(0, 10), count: errors.length }, 'rows could not be reconciled; the others were')
    await markOrphanedRows(redis, keys, orphaned)
    await clearStaleOrphans(redis, keys, new Set(orphaned))
  }
  const sweep = async () => {
    if (running || redis.status !== 'ready') return
    running = true
    try {
      const orphaned = await orphanedQueues(redis, layout)
      for (const shard of shards) await sweepShard(shard, orphaned.filter((work) => work.shard === shard).map((work) => work.queue))
      const names = new Set(orphaned.map((work) => work.queue))
      for (const queue of names) {
        if (reported.has(queue)) continue
        reported.add(queue)
        log.error({ queue, shards: orphaned.filter((work) => work.queue === queue).map((work) => work.shard) },
          `queue ${queue} holds work that no worker consumes: its rows are blocked. Run a worker that defines it, or npx changeflow discard-workflow ${queue}`)
      }
      for (const queue of reported) if (!names.has(queue)) reported.delete(queue)
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
