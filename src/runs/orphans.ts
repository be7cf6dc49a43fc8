import { Queue, type JobType } from 'bullmq'
import type { Logger } from 'pino'
import { QUARANTINE_QUEUE, type Keyspace, type Layout } from '../keys.ts'
import type { RedisClient } from '../redis/connection.ts'
import type { ScriptedRedis } from '../redis/scripts.ts'
import { discardRun, markBlocked, rowHead } from './rows.ts'

/**
 * A workflow renamed or removed in a deploy leaves its queue behind: jobs of runs already
 * accepted (and, in a rolling deploy, still being accepted by old web replicas) that no worker
 * of the new release consumes. Worker processes say which queues of which shards they consume (a
 * heartbeat with an expiry); a queue with work and no live consumer is orphaned, and the rows
 * whose head waits in it count as blocked until an operator drains or discards it.
 */

/** States in which a job still is work: it will run, or waits for an operator. */
export const PENDING_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed', 'waiting-children'] as const satisfies readonly JobType[]

export type JobCounts = Record<(typeof PENDING_STATES)[number], number>

export interface QueueWork {
  queue: string
  shard: number
  counts: JobCounts
  total: number
  /** A worker process said within its heartbeat that it consumes this queue of this shard. */
  consumed: boolean
}

/** The heartbeat's name of one queue of one shard. */
export const consumerOf = (shard: number, queue: string) => `${shard}/${queue}`

/**
 * Records queues as known (in the home shard): every web and worker process does it for its
 * workflows at start, so that whatever a release accepts is found when a later one renames it.
 */
export async function registerQueues (redis: RedisClient, layout: Layout, names: readonly string[]): Promise<void> {
  if (names.length > 0) await redis.sadd(layout.home.queues(), ...names)
}

/** A worker that defines a workflow an operator once gave up (discard-workflow) brings it back. */
export async function restoreQueues (redis: RedisClient, layout: Layout, names: readonly string[]): Promise<void> {
  if (names.length > 0) await Promise.all(layout.shards.map((keys) => redis.srem(keys.discardedQueues(), ...names)))
}

/** Says that this process consumes `names` of `shards` for the next `validForMs`. */
export async function heartbeat (redis: RedisClient, layout: Layout, shards: readonly number[], names: readonly string[], validForMs: number): Promise<void> {
  const until = Date.now() + validForMs
  const members = shards.flatMap((shard) => names.flatMap((name) => [until, consumerOf(shard, name)]))
  if (members.length > 0) await redis.zadd(layout.home.consumers(), ...members)
}

export async function liveConsumers (redis: RedisClient, layout: Layout): Promise<Set<string>> {
  return new Set(await redis.zrangebyscore(layout.home.consumers(), Date.now(), '+inf'))
}

/** A workflow's queue of one shard, on a shared connection; close it when done. */
export function shardQueue (redis: RedisClient, keys: Keyspace, name: string): Queue {
  return new Queue(name, { connection: redis, prefix: keys.bullPrefix })
}

async function counts (redis: RedisClient, keys: Keyspace, name: string): Promise<JobCounts> {
  const queue = shardQueue(redis, keys, name)
  try {
    return await queue.getJobCounts(...PENDING_STATES) as JobCounts
  } finally {
    await queue.close()
  }
}

/** Every known queue of every shard that holds work, with its counts and whether a worker consumes it. */
export async function queueWork (redis: RedisClient, layout: Layout): Promise<QueueWork[]> {
  const [names, live] = await Promise.all([redis.smembers(layout.home.queues()), liveConsumers(redis, layout)])
  const work: QueueWork[] = []
  for (const name of names.sort()) {
    for (const [shard, keys] of layout.shards.entries()) {
      if (name === QUARANTINE_QUEUE && shard > 0) continue
      const found = await counts(redis, keys, name)
      const total = Object.values(found).reduce((sum, n) => sum + n, 0)
      if (total > 0) work.push({ queue: name, shard, counts: found, total, consumed: live.has(consumerOf(shard, name)) })
    }
  }
  return work
}

/** Queues with work that no worker consumes. The quarantine counts too: it needs a worker to re-drive. */
export async function orphanedQueues (redis: RedisClient, layout: Layout): Promise<QueueWork[]> {
  return (await queueWork(redis, layout)).filter((work) => !work.consumed)
}

/** One line per queue name, its shards' counts added up. */
export function byQueue (work: readonly QueueWork[]): Array<Omit<QueueWork, 'shard'> & { shards: number[] }> {
  const merged = new Map<string, Omit<QueueWork, 'shard'> & { shards: number[] }>()
  for (const entry of work) {
    const line = merged.get(entry.queue)
    if (!line) {
      merged.set(entry.queue, { queue: entry.queue, counts: { ...entry.counts }, total: entry.total, consumed: entry.consumed, shards: [entry.shard] })
      continue
    }
    for (const state of PENDING_STATES) line.counts[state] += entry.counts[state]
    line.total += entry.total
    line.consumed &&= entry.consumed
    line.shards.push(entry.shard)
  }
  return [...merged.values()]
}

/**
 * At start, each process says which queues hold work for workflows it does not define, and
 * whether any other process consumes them: after a rename, runs of the old name stay there.
 */
export async function reportForeignWork (redis: RedisClient, layout: Layout, defined: readonly string[], log: Pick<Logger, 'warn'>): Promise<void> {
  const own = new Set([...defined, QUARANTINE_QUEUE])
  for (const work of byQueue((await queueWork(redis, layout)).filter((entry) => !own.has(entry.queue)))) {
    log.warn({ queue: work.queue, jobs: work.counts, consumedElsewhere: work.consumed },
      `queue ${work.queue} holds ${work.total} jobs of a workflow this deployment does not define` +
      (work.consumed
        ? ': another process still runs it (an older release during a rolling deploy?)'
        : ': no worker runs it, so its rows are blocked. Drain it with a worker that still defines it, ' +
          `or give its runs up: npx changeflow discard-workflow ${work.queue}`))
  }
}

/** Jobs of the orphaned queues (of one shard) whose run is its row's head: those rows count as blocked. */
export async function markOrphanedRows (redis: ScriptedRedis, keys: Keyspace, orphaned: readonly string[], limit = 1_000): Promise<number> {
  let marked = 0
  for (const name of orphaned) {
    const queue = shardQueue(redis, keys, name)
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

/** Rows of one shard recorded as orphan-blocked whose head moved, or whose queue is consumed again. */
export async function clearStaleOrphans (redis: RedisClient, keys: Keyspace, orphaned: ReadonlySet<string>, limit = 1_000): Promise<number> {
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
 * Gives a workflow up: it is recorded as discarded in every shard, so that its runs parked in
 * rows are passed over when their turn comes and changes an old replica still accepts start
 * none; then every run whose job waits in its queues is removed, its run marked discarded and
 * its row moves on, in passes until the queues hold nothing (or `maxPasses`). A worker that
 * defines the workflow again brings it back.
 */
export async function discardQueueWork (redis: ScriptedRedis, layout: Layout, name: string, recordTtlMs: number, maxPasses = 50): Promise<DiscardedWork> {
  await Promise.all(layout.shards.map((keys) => redis.sadd(keys.discardedQueues(), name)))
  const result: DiscardedWork = { discarded: 0, errors: [] }
  for (const keys of layout.shards) {
    const queue = shardQueue(redis, keys, name)
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
  }
  return result
}
