import type { Keyspace } from '../keys.ts'
import type { ScriptedRedis } from '../redis/scripts.ts'
import type { JournalBounds } from '../journal/journal.ts'
import { groupCommitFor, JOBS_PER_SCRIPT } from './group-commit.ts'
import type { BatchPlan } from './plan.ts'

export { JOBS_PER_SCRIPT }

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
  /** The change journal's bounds; absent when it is off. */
  journal?: JournalBounds
}

/**
 * Writes a batch plan. Each change is written in one script call with all its runs, or not at
 * all, so a failure anywhere leaves nothing half-written for Sequin's redelivery to trip over: it
 * finds what did land as duplicates. Parts run in commit order; the quarantine's go first, so a
 * full quarantine refuses the batch before any of it is written.
 */
export async function commitPlan (redis: ScriptedRedis, keys: Keyspace, plan: BatchPlan, limits: CommitLimits, now: number, signal?: AbortSignal): Promise<Committed> {
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
  const first = plan.quarantine.length > 0 ? await commitPart(redis, keys, parts[0]!, limits, now, signal) : null
  if (first && !first.ok) return first
  const rest = await Promise.all(parts.slice(first ? 1 : 0).map((part) => commitPart(redis, keys, part, limits, now, signal)))
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

async function commitPart (redis: ScriptedRedis, keys: Keyspace, part: Part, limits: CommitLimits, now: number, signal?: AbortSignal): Promise<Committed> {
  const result = await groupCommitFor(redis, keys).submit({ ...part, now, ttl: limits.dedupTtlMs, quarantineLimit: limits.quarantineLimit, journal: limits.journal }, signal)
  if (result[0] === -1) return { ok: false, quarantineFull: { held: result[1] ?? 0 } }
  const [dropped = 0, skipped = 0, late = 0, jobs = 0] = result.splice(-4).reverse()
  return { ok: true, accepted: result.map((flag) => flag === 1), jobs, late, skipped, dropped }
}
