import type { Keyspace } from '../keys.ts'
import { declaredKeys } from '../redis/declared-keys.ts'
import type { ScriptedRedis } from '../redis/scripts.ts'
import type { BatchPlan, JobSpec } from './plan.ts'

export type Committed =
  | {
    ok: true
    /** Per planned change: true when it was new, false when already seen. */
    accepted: boolean[]
    jobs: number
    /** Runs of changes older than their row's newest: started (and marked) or skipped. */
    late: number
    skipped: number
    /** Runs of workflows an operator gave up (discard-workflow), not started. */
    dropped: number
  }
  /** The quarantine already holds `held` messages: this batch's would pass the limit. Nothing was written. */
  | { ok: false, quarantineFull: { held: number } }

export interface CommitLimits {
  dedupTtlMs: number
  quarantineLimit: number
}

/** A job as the ingest script reads it: its data is passed as its own argument, by index. */
interface ScriptJob {
  queue: string
  id: string
  name: string
  data: number
  opts: number
  run?: string
  row?: string
  pkRow?: string
  ordered?: boolean
  skipLate?: boolean
}

/**
 * Most jobs one script call adds. A script holds Redis for its whole run (about 0.1 ms a job),
 * so a large batch is written as several calls, pipelined on one connection (Redis runs them
 * back to back, in order): none holds the server for more than a few tens of milliseconds.
 */
export const JOBS_PER_SCRIPT = 250

/**
 * Writes a batch plan. Each change is written in one script call with all its runs, or not at
 * all, so a failure anywhere leaves nothing half-written for Sequin's redelivery to trip over: it
 * finds what did land as duplicates. Parts run in commit order; the quarantine's go first, so a
 * full quarantine refuses the batch before any of it is written.
 */
export async function commitPlan (redis: ScriptedRedis, keys: Keyspace, plan: BatchPlan, limits: CommitLimits, now: number): Promise<Committed> {
  if (plan.changes.length === 0 && plan.quarantine.length === 0 && plan.positions.length === 0) {
    return { ok: true, accepted: [], jobs: 0, late: 0, skipped: 0, dropped: 0 }
  }
  const parts: Part[] = [{ changes: [], quarantine: plan.quarantine, positions: [] }]
  let jobs = plan.quarantine.length
  for (const change of plan.changes) {
    if (jobs > 0 && jobs + change.jobs.length > JOBS_PER_SCRIPT) {
      parts.push({ changes: [], quarantine: [], positions: [] })
      jobs = 0
    }
    parts.at(-1)!.changes.push(change)
    jobs += change.jobs.length
  }
  // Unmatched changes' positions go last: every matched change of the batch is judged against
  // what the rows had before it, as when the batch is one call.
  parts.at(-1)!.positions = plan.positions
  // The first part holds the quarantine's check: the rest is sent once it passed, so that a full
  // quarantine refuses the batch before any of it is written. Without quarantined messages every
  // part goes out at once (Redis still runs them in order).
  const first = plan.quarantine.length > 0 ? await commitPart(redis, keys, parts[0]!, limits, now) : null
  if (first && !first.ok) return first
  const rest = await Promise.all(parts.slice(first ? 1 : 0).map((part) => commitPart(redis, keys, part, limits, now)))
  const results = first ? [first, ...rest] : rest
  const merged: Committed = { ok: true, accepted: [], jobs: 0, late: 0, skipped: 0, dropped: 0 }
  for (const result of results) {
    if (!result.ok) return result
    merged.accepted.push(...result.accepted)
    merged.jobs += result.jobs
    merged.late += result.late
    merged.skipped += result.skipped
    merged.dropped += result.dropped
  }
  return merged
}

type Part = Pick<BatchPlan, 'changes' | 'quarantine' | 'positions'>

async function commitPart (redis: ScriptedRedis, keys: Keyspace, plan: Part, limits: CommitLimits, now: number): Promise<Committed> {
  const argv: string[] = ['']
  const queues = new Set<string>()
  const opts = new Map<string, number>()

  const scriptJob = (job: JobSpec): ScriptJob => {
    queues.add(job.queue)
    let index = opts.get(job.opts)
    if (index === undefined) {
      index = opts.size + 1
      opts.set(job.opts, index)
    }
    argv.push(job.data)
    const { queue, id, name, run, row, pkRow, ordered, skipLate } = job
    return { queue, id, name, data: argv.length, opts: index, run, row, pkRow, ordered, skipLate }
  }

  const changes = plan.changes.map((change) => ({
    id: change.changeId,
    version: change.version,
    late: change.late === undefined ? undefined : Number(change.late),
    jobs: change.jobs.map(scriptJob),
  }))
  const quarantine = plan.quarantine.map(scriptJob)
  argv[0] = JSON.stringify({
    bull: keys.bullPrefix,
    own: keys.own,
    now: String(now),
    ttl: limits.dedupTtlMs,
    quarantineLimit: limits.quarantineLimit,
    queues: [...queues],
    opts: [...opts.keys()],
    changes,
    quarantine,
    positions: plan.positions,
  })

  const declared = declaredKeys(redis, keys.rows(), function * () {
    yield keys.tripwire()
    yield keys.discardedQueues()
    for (const name of queues) yield * keys.queueKeysTouched(name)
    for (const change of plan.changes) {
      yield keys.seen(change.changeId)
      for (const job of change.jobs) {
        yield keys.job(job.queue, job.id)
        if (job.run) yield keys.run(job.run)
        if (job.row) yield keys.rowQueue(job.row)
        if (job.pkRow) yield keys.rowVersion(job.pkRow)
      }
    }
    for (const job of plan.quarantine) yield keys.job(job.queue, job.id)
    for (const position of plan.positions) yield keys.rowVersion(position.row)
  })
  const result = await redis.cfIngest(declared.length, ...declared, ...argv)
  if (result[0] === -1) return { ok: false, quarantineFull: { held: result[1] ?? 0 } }
  const [dropped = 0, skipped = 0, late = 0, jobs = 0] = result.splice(-4).reverse()
  return { ok: true, accepted: result.map((flag) => flag === 1), jobs, late, skipped, dropped }
}
