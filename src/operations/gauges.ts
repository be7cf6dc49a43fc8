import type { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Keyspace } from '../keys.ts'
import type { Metrics } from '../metrics.ts'
import { blockedRows } from './rows.ts'

const STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'] as const

/** Queue depths and row states, read from Redis at scrape time by the web side. */
export function registerGauges (metrics: Metrics, queues: readonly Queue[], redis: Redis, keys: Keyspace): void {
  metrics.gauge('changeflow_queue_jobs', 'Jobs per queue and state.', ['queue', 'state'], async (gauge) => {
    for (const queue of queues) {
      const counts = await queue.getJobCounts(...STATES)
      for (const state of STATES) gauge.set({ queue: queue.name, state }, counts[state] ?? 0)
    }
  })
  metrics.gauge('changeflow_rows_waiting', 'Rows with an ordered run waiting behind another.', [], async (gauge) => {
    gauge.set(await redis.zcard(keys.rows()))
  })
  metrics.gauge('changeflow_rows_blocked', 'Rows held up by a run whose step failed for good.', [], async (gauge) => {
    gauge.set((await blockedRows(redis, keys, queues)).length)
  })
}
