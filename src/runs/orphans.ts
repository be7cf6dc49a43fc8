import { Queue, type JobType } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { QUARANTINE_QUEUE, type Keyspace } from '../keys.ts'
import type { ScriptedRedis } from '../redis/scripts.ts'
import { discardRun, markBlocked, rowHead } from './rows.ts'

/**
 * A workflow renamed or removed in a deploy leaves its queue behind: jobs of runs already
 * accepted (and, in a rolling deploy, still being accepted by old web replicas) that no worker
 * of the new release consumes. Worker processes say which queues they consume (a heartbeat with
 * an expiry); a queue with work and no live consumer is orphaned, and the rows whose head waits
 * in it count as blocked until an operator drains or discards it.
 */

/** States in which a job still is work: it will run, or waits for an operator. */
export const PENDING_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed', 'waiting-children'] as const satisfies readonly JobType[]

export interface QueueWork {
  queue: string
  counts: Record<(typeof PENDING_STATES)[number], number>
  total: number
  /** A worker process said within its heartbeat that it consumes this queue. */
  consumed: boolean
}

/** Records queues as known: ingest does it for every queue it adds to; workers for theirs at start. */
export async function registerQueues (redis: Redis, keys: Keyspace, names: readonly string[]): Promise<void> {
  if (names.length === 0) return
  await redis.sadd(keys.queues(), ...names)
  // A worker that defines a workflow an operator once gave up brings it back.
  await redis.srem(keys.discardedQueues(), ...names)
}

/** Says that this process consumes `names` for the next `validForMs`. */
export async function heartbeat (redis: Redis, keys: Keyspace, names: readonly string[], validForMs: number): Promise<void> {
  const until = Date.now() + validForMs
  if (names.length > 0) await redis.zadd(keys.consumers(), ...names.flatMap((name) => [until, name]))
}

export async function liveConsumers (redis: Redis, keys: Keyspace): Promise<Set<string>> {
  return new Set(await redis.zrangebyscore(keys.consumers(), Date.now(), '+inf'))
}

/** Every known queue that holds work, with its counts and whether a worker consumes it. */
export async function queueWork (redis: Redis, keys: Keyspace): Promise<QueueWork[]> {
  const [names, live] = await Promise.all([redis.smembers(keys.queues()), liveConsumers(redis, keys)])
  const work: QueueWork[] = []
  for (const name of names.sort()) {
    const queue = new Queue(name, { connection: redis, prefix: keys.bullPrefix })
    try {
      const counts = await queue.getJobCounts(...PENDING_STATES) as QueueWork['counts']
      const total = Object.values(counts).reduce((sum, n) => sum + n, 0)
      if (total > 0) work.push({ queue: name, counts, total, consumed: live.has(name) })
    } finally {
      await queue.close()
    }
  }
  return work
}

/** Queues with work that no worker consumes. The quarantine counts too: it needs a worker to re-drive. */
export async function orphanedQueues (redis: Redis, keys: Keyspace): Promise<QueueWork[]> {
  return (await queueWork(redis, keys)).filter((work) => !work.consumed)
}

/**
 * At start, each process says which queues hold work for workflows it does not define, and
 * whether any other process consumes them: after a rename, runs of the old name stay there.
 */
export async function reportForeignWork (redis: Redis, keys: Keyspace, defined: readonly string[], log: Pick<Logger, 'warn'>): Promise<QueueWork[]> {
  const own = new Set([...defined, QUARANTINE_QUEUE])
  const foreign = (await queueWork(redis, keys)).filter((work) => !own.has(work.queue))
  for (const work of foreign) {
    log.warn({ queue: work.queue, jobs: work.counts, consumedElsewhere: work.consumed },
      `queue ${work.queue} holds ${work.total} jobs of a workflow this deployment does not define` +
      (work.consumed
        ? ': another process still runs it (an older release during a rolling deploy?)'
        : ': no worker runs it, so its rows are blocked. Drain it with a worker that still defines it, ' +
          `or give its runs up: npm run cli -- discard-workflow ${work.queue}`))
  }
  return foreign
}

/** Jobs of the orphaned queues whose run is its row's head: those rows count as blocked. */
export async function markOrphanedRows (redis: ScriptedRedis, keys: Keyspace, orphaned: readonly string[], limit = 1_000): Promise<number> {
  let marked = 0
  for (const name of orphaned) {
    const queue = new Queue(name, { connection: redis, prefix: keys.bullPrefix })
    try {
      for (const job of await queue.getJobs([...PENDING_STATES], 0, limit - 1)) {
        const row = (job?.data as { row?: unknown } | undefined)?.row
        if (typeof row === 'string' && job.id && await markBlocked(redis, keys, row, name, job.id, 'orphaned')) marked++
      }
    } finally {
      await queue.close()
    }
  }
  return marked
}

/** Rows recorded as orphan-blocked whose head moved, or whose queue is consumed again. */
export async function clearStaleOrphans (redis: Redis, keys: Keyspace, orphaned: ReadonlySet<string>, limit = 1_000): Promise<number> {
  const key = keys.blocked('orphaned')
  let cleared = 0
  for (const row of await redis.zrandmember(key, limit) as string[]) {
    const head = await rowHead(redis, keys, row)
    if (!head || !orphaned.has(head.queue)) cleared += await redis.zrem(key, row)
  }
  return cleared
}

export interface DiscardedWork {
  discarded: number
  /** Jobs that could not be given up (locked by a live worker, removed meanwhile): why. */
  errors: string[]
}

/**
 * Gives a workflow up: it is recorded as discarded, so that its runs parked in rows are passed
 * over when their turn comes and changes an old replica still accepts start none; then every
 * run whose job waits in its queue is removed, its run marked discarded and its row moves on, in
 * passes until the queue holds nothing (or `maxPasses`). A worker that defines the workflow
 * again brings it back.
 */
export async function discardQueueWork (redis: ScriptedRedis, keys: Keyspace, name: string, recordTtlMs: number, maxPasses = 50): Promise<DiscardedWork> {
  await redis.sadd(keys.discardedQueues(), name)
  const queue = new Queue(name, { connection: redis, prefix: keys.bullPrefix })
  const result: DiscardedWork = { discarded: 0, errors: [] }
  try {
    for (let pass = 0; pass < maxPasses; pass++) {
      const jobs = (await queue.getJobs([...PENDING_STATES], 0, 999)).filter((job) => job?.id)
      if (jobs.length === 0) break
      let progress = 0
      for (const job of jobs) {
        try {
          await discardRun(redis, keys, queue, job.id!, recordTtlMs, true)
          progress++
        } catch (error) {
          result.errors.push(`${job.id}: ${(error as Error).message}`)
        }
      }
      result.discarded += progress
      if (progress === 0) break
    }
  } finally {
    await queue.close()
  }
  return result
}
