import { Queue, type Job } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Keyspace } from '../keys.ts'
import type { StepJobData } from '../ingest/plan.ts'
import type { ScriptedRedis } from '../redis/scripts.ts'

export interface BlockedRow {
  row: string
  workflow: string
  step: string
  table: string
  key: string[]
  action: string
  commitTimestamp: string
  jobId: string
  error: string
  failedAt: string | null
  /** Runs of the row waiting behind the failed one. */
  waiting: number
}

/** Queues of the given workflows, on one shared connection; close them when done. */
export function workflowQueues (names: readonly string[], connection: Redis, keys: Keyspace): Queue[] {
  return names.map((name) => new Queue(name, { connection, prefix: keys.bullPrefix }))
}

/** Rows whose head run has a step that failed for good: nothing of the row runs until an operator acts. */
export async function blockedRows (redis: Redis, keys: Keyspace, queues: readonly Queue[]): Promise<BlockedRow[]> {
  const blocked: BlockedRow[] = []
  for (const queue of queues) {
    const failed: Array<Job<StepJobData>> = await queue.getFailed()
    for (const job of failed) {
      const { row } = job.data
      if (!row) continue
      const rowQueue = keys.rowQueue(row)
      const [head, length, current] = await Promise.all([redis.lindex(rowQueue, 0), redis.llen(rowQueue), redis.hget(keys.run(job.data.run), 'cj')])
      if (!head?.startsWith(`${queue.name}/${job.data.run}/`)) continue
      // Only the run's current job holds the row (an older one may have failed after it advanced).
      if (job.id !== (current ?? head.split('/')[2])) continue
      blocked.push({
        row,
        workflow: queue.name,
        step: job.name,
        table: job.data.table,
        key: job.data.key,
        action: job.data.action,
        commitTimestamp: job.data.commitTimestamp,
        jobId: job.id!,
        error: job.failedReason,
        failedAt: job.finishedOn ? new Date(job.finishedOn).toISOString() : null,
        waiting: Math.max(0, length - 1),
      })
    }
  }
  return blocked
}

export type ReconcileOutcome = 'empty' | 'running' | 'started' | 'discarded'

/** `recordTtlMs`: how long a discarded run's record is kept, so that it cannot be revived. */
export function reconcileRow (redis: ScriptedRedis, keys: Keyspace, row: string, recordTtlMs: number): Promise<ReconcileOutcome> {
  return redis.cfReconcile(1, keys.rows(), keys.bullPrefix, keys.own, row, Date.now(), recordTtlMs)
}

/**
 * Checks the rows whose head has not moved for `idleMs`: a head whose current job is gone
 * (removed from the dashboard, say) is discarded so that the row moves on.
 */
export async function reconcileRows (redis: ScriptedRedis, keys: Keyspace, idleMs: number, recordTtlMs: number, limit = 500): Promise<Record<ReconcileOutcome, number>> {
  const counts: Record<ReconcileOutcome, number> = { empty: 0, running: 0, started: 0, discarded: 0 }
  const rows = await redis.zrangebyscore(keys.rows(), '-inf', Date.now() - idleMs, 'LIMIT', 0, limit)
  for (const row of rows) counts[await reconcileRow(redis, keys, row, recordTtlMs)]++
  return counts
}

/**
 * Retries a failed step with a fresh set of attempts (the operator fixed the cause): its run
 * continues, then its row's next run.
 */
export async function retryStep (queue: Queue, jobId: string): Promise<void> {
  const job = await queue.getJob(jobId)
  if (!job) throw new Error(`no job ${jobId} in ${queue.name}`)
  const state = await job.getState()
  if (state !== 'failed') throw new Error(`job ${jobId} in ${queue.name} is ${state}: only a failed step can be retried`)
  await job.retry('failed', { resetAttemptsMade: true })
}

/** Gives a failed run up: its job is removed and its row moves on to the next run. */
export async function discardRun (redis: ScriptedRedis, keys: Keyspace, queue: Queue, jobId: string, recordTtlMs: number): Promise<ReconcileOutcome | null> {
  const job: Job<StepJobData> | undefined = await queue.getJob(jobId)
  if (!job) throw new Error(`no job ${jobId} in ${queue.name}`)
  const state = await job.getState()
  if (state !== 'failed') throw new Error(`job ${jobId} is ${state}: only a failed run can be discarded`)
  await job.remove()
  return job.data.row ? reconcileRow(redis, keys, job.data.row, recordTtlMs) : null
}
