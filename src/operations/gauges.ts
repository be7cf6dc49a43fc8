import type { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import { BLOCK_REASONS, type Keyspace } from '../keys.ts'
import type { Metrics } from '../metrics.ts'

const STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'] as const

/**
 * Queue depths and row states, read from Redis at scrape time by the web side: a few counting
 * commands per queue, never a scan of jobs. `redis` should not be the connection ingest uses.
 * `queues` is asked at each scrape: queues of workflows this release does not define (renamed,
 * removed) join when they are found holding work.
 */
export function registerGauges (metrics: Metrics, queues: () => readonly Queue[], redis: Redis, keys: Keyspace): void {
  metrics.gauge('changeflow_queue_jobs', 'Jobs per queue and state.', ['queue', 'state'], async (gauge) => {
    for (const queue of queues()) {
      const counts = await queue.getJobCounts(...STATES)
      for (const state of STATES) gauge.set({ queue: queue.name, state }, counts[state] ?? 0)
    }
  })
  metrics.gauge('changeflow_rows_waiting', 'Rows with an ordered run waiting behind another.', [], async (gauge) => {
    gauge.set(await redis.zcard(keys.rows()))
  })
  metrics.gauge('changeflow_rows_blocked',
    'Rows that cannot move until an operator acts: their head run\'s step failed for good (failed), or waits in a queue no worker consumes (orphaned).',
    ['reason'], async (gauge) => {
      const counts = await Promise.all(BLOCK_REASONS.map((reason) => redis.zcard(keys.blocked(reason))))
      BLOCK_REASONS.forEach((reason, i) => gauge.set({ reason }, counts[i]!))
    })
}
