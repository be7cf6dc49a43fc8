import type { Queue } from 'bullmq'
import type { RedisClient } from '../redis/connection.ts'
import { BLOCK_REASONS, type Layout } from '../keys.ts'
import type { Metrics } from '../metrics.ts'
import { registerOperatorActions } from './audit.ts'

const STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'] as const

/**
 * Queue depths and row states, read from Redis at scrape time by the web side: a few counting
 * commands per queue, never a scan of jobs. `redis` should not be the connection ingest uses.
 * `queues` is asked at each scrape: queues of workflows this release does not define (renamed,
 * removed) join when they are found holding work.
 */
export function registerGauges (metrics: Metrics, queues: () => readonly Queue[], redis: RedisClient, layout: Layout): void {
  registerOperatorActions(metrics, redis, layout.home)
  const total = async (count: (keys: Layout['home']) => Promise<number>) =>
    (await Promise.all(layout.shards.map(count))).reduce((sum, n) => sum + n, 0)
  metrics.gauge('changeflow_queue_jobs', 'Jobs per queue (all shards together) and state.', ['queue', 'state'], async (gauge) => {
    const sums = new Map<string, Record<string, number>>()
    for (const queue of queues()) {
      const counts = await queue.getJobCounts(...STATES)
      const sum = sums.get(queue.name) ?? {}
      for (const state of STATES) sum[state] = (sum[state] ?? 0) + (counts[state] ?? 0)
      sums.set(queue.name, sum)
    }
    for (const [queue, sum] of sums) for (const state of STATES) gauge.set({ queue, state }, sum[state] ?? 0)
  })
  metrics.gauge('changeflow_rows_waiting', 'Rows with an ordered run waiting behind another.', [], async (gauge) => {
    gauge.set(await total((keys) => redis.zcard(keys.rows())))
  })
  metrics.gauge('changeflow_rows_blocked',
    'Rows that cannot move until an operator acts: their head run\'s step failed for good (failed), or waits in a queue no worker consumes (orphaned).',
    ['reason'], async (gauge) => {
      for (const reason of BLOCK_REASONS) gauge.set({ reason }, await total((keys) => redis.zcard(keys.blocked(reason))))
    })
}
