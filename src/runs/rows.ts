import { Job, Queue } from 'bullmq'
import { Cluster } from 'ioredis'
import type { RedisClient } from '../redis/connection.ts'
import { BLOCK_REASONS, type BlockReason, type Keyspace } from '../keys.ts'
import type { StepJobData } from '../ingest/job-data.ts'
import { declaredKeys } from '../redis/declared-keys.ts'
import type { ScriptedRedis } from '../redis/scripts.ts'

export interface BlockedRow {
  row: string
  /** `failed`: its head run's step failed for good; `orphaned`: its job waits in a queue no worker consumes. */
  reason: BlockReason
  since: string
  workflow: string
  step: string
  table: string
  key: string[]
  action: string
  commitTimestamp: string
  jobId: string
  /** The job's BullMQ state (failed, waiting, delayed, ...). */
  state: string
  error: string
  failedAt: string | null
  /** Runs of the row waiting behind the blocked one. */
  waiting: number
}

/** Queues of the given workflows, on one shared connection; close them when done. */
export function workflowQueues (names: readonly string[], connection: RedisClient, keys: Keyspace): Queue[] {
  return names.map((name) => new Queue(name, { connection, prefix: keys.bullPrefix }))
}

/** A row queue entry: `<queue>/<run>/<first job id>`. */
export function parseRowEntry (entry: string): { queue: string, run: string, firstJob: string } | null {
  const match = /^([^/]*)\/([^/]*)\/(.*)$/.exec(entry)
  return match ? { queue: match[1]!, run: match[2]!, firstJob: match[3]! } : null
}

/** The head run of a row and the job it is at now, or null when the row has no runs. */
export async function rowHead (redis: RedisClient, keys: Keyspace, row: string): Promise<{ queue: string, run: string, jobId: string, length: number } | null> {
  const [head, length] = await Promise.all([redis.lindex(keys.rowQueue(row), 0), redis.llen(keys.rowQueue(row))])
  const entry = head === null ? null : parseRowEntry(head)
  if (!entry) return null
  const current = await redis.hget(keys.run(entry.run), 'cj')
  return { queue: entry.queue, run: entry.run, jobId: current ?? entry.firstJob, length }
}

/**
 * Rows that cannot move until an operator acts, read from the blocked-row indexes (kept as rows
 * block and move on): a cost per blocked row, never per failed job. `only` limits the listing to
 * the given workflows' queues.
 */
export async function blockedRows (redis: RedisClient, keys: Keyspace, only?: readonly Queue[], limit = 1_000): Promise<BlockedRow[]> {
  const wanted = only && new Set(only.map((queue) => queue.name))
  const queues = new Map<string, Queue>()
  const queueOf = (name: string) => {
    let queue = queues.get(name)
    if (!queue) queues.set(name, queue = new Queue(name, { connection: redis, prefix: keys.bullPrefix }))
    return queue
  }
  const blocked: BlockedRow[] = []
  try {
    for (const reason of BLOCK_REASONS) {
      const members = await redis.zrange(keys.blocked(reason), 0, String(limit - 1), 'WITHSCORES') as string[]
      for (let i = 0; i < members.length; i += 2) {
        const row = members[i]!
        const head = await rowHead(redis, keys, row)
        if (!head || (wanted && !wanted.has(head.queue))) continue
        const queue = queueOf(head.queue)
        const job: Job<StepJobData> | undefined = await Job.fromId(queue, head.jobId)
        if (!job) continue // removed meanwhile: the reconciler moves the row on
        blocked.push({
          row,
          reason,
          since: new Date(Number(members[i + 1])).toISOString(),
          workflow: head.queue,
          step: job.name,
          table: job.data.table,
          key: job.data.key,
          action: job.data.action,
          commitTimestamp: job.data.commitTimestamp,
          jobId: head.jobId,
          state: await job.getState(),
          error: reason === 'failed' ? job.failedReason : `no worker consumes queue ${head.queue}: no workflow of that name runs`,
          failedAt: job.finishedOn ? new Date(job.finishedOn).toISOString() : null,
          waiting: Math.max(0, head.length - 1),
        })
      }
    }
  } finally {
    await Promise.all([...queues.values()].map((queue) => queue.close()))
  }
  return blocked
}

export type ReconcileOutcome = 'empty' | 'running' | 'blocked' | 'started' | 'finished' | 'discarded'

/** `recordTtlMs`: how long a discarded run's record is kept, so that it cannot be revived. */
export async function reconcileRow (redis: ScriptedRedis, keys: Keyspace, row: string, recordTtlMs: number): Promise<ReconcileOutcome> {
  const argv = [keys.bullPrefix, keys.own, row, Date.now(), recordTtlMs]
  if (!(redis instanceof Cluster)) return await redis.cfReconcile(1, keys.rows(), ...argv) as ReconcileOutcome
  // On a cluster the script declares what it touches: the head it will judge, read first.
  for (let attempt = 0; attempt < 5; attempt++) {
    const entry = await redis.lindex(keys.rowQueue(row), 0)
    const head = entry === null ? null : parseRowEntry(entry)
    const current = head ? await redis.hget(keys.run(head.run), 'cj') : null
    const names = await redis.smembers(keys.home.queues())
    const declared = declaredKeys(redis, keys.rows(), function * () {
      yield keys.rowQueue(row)
      yield keys.tripwire()
      yield keys.blocked('failed')
      yield keys.blocked('orphaned')
      yield keys.discardedQueues()
      if (head) {
        yield keys.run(head.run)
        yield keys.job(head.queue, current ?? head.firstJob)
      }
      for (const name of names) yield * keys.queueKeysTouched(name)
    })
    const outcome = await redis.cfReconcile(declared.length, ...declared, ...argv, entry ?? '')
    if (outcome !== 'moved') return outcome
  }
  return 'running' // the row keeps moving under us: it is not stuck; the next sweep looks again
}

/** Records that a row's head job failed for good or waits in an orphaned queue (a no-op if it moved meanwhile). */
export async function markBlocked (redis: ScriptedRedis, keys: Keyspace, row: string, queue: string, jobId: string, reason: BlockReason): Promise<boolean> {
  const run = jobId.slice(jobId.indexOf('.') + 1) // a step job id is `<step>.<run>`
  const declared = declaredKeys(redis, keys.rowQueue(row), () => [keys.run(run), keys.blocked('failed'), keys.blocked('orphaned')])
  return await redis.cfBlock(declared.length, ...declared, keys.bullPrefix, keys.own, row, queue, jobId, reason, Date.now()) === 1
}

/**
 * Checks the rows whose head has not moved for `idleMs`, and the rows recorded as blocked by a
 * failure: a head whose current job is gone (removed from the dashboard, say) is discarded and
 * the row moves on; a head whose failed step was retried is no longer counted as blocked.
 */
export async function reconcileRows (redis: ScriptedRedis, keys: Keyspace, idleMs: number, recordTtlMs: number, limit = 500): Promise<Record<ReconcileOutcome, number> & { errors: string[] }> {
  const counts = { empty: 0, running: 0, blocked: 0, started: 0, finished: 0, discarded: 0, errors: [] as string[] }
  const before = Date.now() - idleMs
  const [idle, failed] = await Promise.all([
    redis.zrangebyscore(keys.rows(), '-inf', before, 'LIMIT', 0, limit),
    // A sample, so that every blocked row is looked at in time, however many there are.
    redis.zrandmember(keys.blocked('failed'), limit) as Promise<string[]>,
  ])
  for (const row of new Set([...idle, ...failed])) {
    try {
      counts[await reconcileRow(redis, keys, row, recordTtlMs)]++
    } catch (error) {
      // One row's trouble (a queue key of the wrong type) must not hold the others up.
      counts.errors.push(`${row}: ${(error as Error).message}`)
    }
  }
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

/** States of a job of an orphaned queue that can be given up (an active one only once its dead worker's lock expired). */
const GIVE_UP_STATES = new Set(['failed', 'waiting', 'delayed', 'prioritized', 'paused', 'waiting-children', 'active'])

/**
 * Gives a run up: its job is removed and its row moves on to the next run. A failed run, or
 * (`orphaned`) one whose job waits in a queue no worker consumes.
 */
export async function discardRun (redis: ScriptedRedis, keys: Keyspace, queue: Queue, jobId: string, recordTtlMs: number, orphaned = false): Promise<ReconcileOutcome | null> {
  const job: Job<StepJobData> | undefined = await queue.getJob(jobId)
  if (!job) throw new Error(`no job ${jobId} in ${queue.name}`)
  const state = await job.getState()
  if (state !== 'failed' && !(orphaned && GIVE_UP_STATES.has(state))) {
    throw new Error(`job ${jobId} is ${state}: only a failed run (or any waiting run of a workflow no worker runs) can be discarded`)
  }
  await job.remove()
  if (job.data.row) return reconcileRow(redis, keys, job.data.row, recordTtlMs)
  // Unordered: no row moves, but the record (kept while the run was unfinished) is marked and
  // expires, so that a retry of an earlier job of the run runs nothing and nothing is left behind.
  const record = keys.run(job.data.run)
  await redis.multi().hdel(record, 'cj').hset(record, 'discarded', Date.now()).pexpire(record, recordTtlMs).exec()
  return null
}
