import type { Config } from '../config.ts'
import { replayChangeId } from '../ingest/identity.ts'
import { createJobOptions } from '../ingest/job-options.ts'
import { planBatch, type BatchPlan, type PlannedChange } from '../ingest/plan.ts'
import { commitBatch } from '../ingest/shards.ts'
import type { Keyspace, Layout } from '../keys.ts'
import type { RedisClient } from '../redis/connection.ts'
import { withScripts } from '../redis/scripts.ts'
import type { Workflow } from '../workflows/define.ts'
import { scanJournal, type JournalEntry, type JournalGap } from './read.ts'

export interface ReplaySelection {
  workflows?: readonly string[]
  /** A table name, or `schema.table`. */
  table?: string
  actions?: readonly string[]
  /** The primary key's values (several for a composite key). */
  key?: readonly string[]
  /** Commit-time window, ms since the epoch, both ends included. */
  from?: number
  to?: number
}

// Postgres's clock and Redis's may disagree a little: a change is looked for in entries accepted
// this long before its window starts.
const CLOCK_SLACK_MS = 5 * 60_000

function selected (entry: JournalEntry, selection: ReplaySelection): boolean {
  const { metadata, action } = entry.message
  const { table, actions, key, from, to } = selection
  if (table !== undefined && table !== metadata.table_name && table !== `${metadata.table_schema}.${metadata.table_name}`) return false
  if (actions && !actions.includes(action)) return false
  if (key && JSON.stringify(key) !== JSON.stringify(metadata.record_pks ?? [])) return false
  const committed = Date.parse(metadata.commit_timestamp)
  return (from === undefined || committed >= from) && (to === undefined || committed <= to)
}

/** An entry id's sequence number within its millisecond (`<ms>-<seq>`). */
const sequence = (entry: JournalEntry) => Number(entry.entry.slice(entry.entry.indexOf('-') + 1))

/**
 * Which of two entries of different shards was accepted first: by time, then (the same
 * millisecond) by sequence number and shard, an order as good as any between shards.
 */
function acceptedBefore (a: JournalEntry, b: JournalEntry): boolean {
  return (a.acceptedAt - b.acceptedAt || sequence(a) - sequence(b) || a.shard - b.shard) < 0
}

/**
 * The journalled changes a replay selects, in the order they were accepted, each once, read as
 * they are needed: every shard's journal a page at a time, merged by acceptance. What the
 * journals held when the selection began: entries accepted while it runs are not selected, and
 * entries the journals trimmed before the selection reached them are reported to `gap` (see
 * scanJournal). Only the selected changes' ids are kept (to select each once), never the changes
 * themselves.
 */
export async function * selectChanges (redis: RedisClient, layout: Layout, selection: ReplaySelection, since: number, gap: (gap: JournalGap) => void = () => {}): AsyncGenerator<JournalEntry> {
  const start = Math.max(since, (selection.from ?? 0) - CLOCK_SLACK_MS)
  const scans = layout.shards.map((keys, shard) => scanJournal(redis, keys, shard, start, gap))
  const heads = await Promise.all(scans.map(async (scan) => (await scan.next()).value as JournalEntry | undefined))
  const seen = new Set<string>()
  for (;;) {
    let first = -1
    heads.forEach((head, i) => {
      if (head !== undefined && (first === -1 || acceptedBefore(head, heads[first]!))) first = i
    })
    if (first === -1) return
    const entry = heads[first]!
    heads[first] = (await scans[first]!.next()).value as JournalEntry | undefined
    if (!selected(entry, selection) || seen.has(entry.changeId)) continue
    seen.add(entry.changeId)
    yield entry
  }
}

/** `entries` in arrays of `size` (the last shorter). */
export async function * inChunks<T> (entries: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let chunk: T[] = []
  for await (const entry of entries) {
    chunk.push(entry)
    if (chunk.length === size) {
      yield chunk
      chunk = []
    }
  }
  if (chunk.length > 0) yield chunk
}

/** One run a replay would start: its change (under the replay's identity), workflow and shard. */
export interface ReplayRun {
  changeId: string
  workflow: string
  run: string
  firstJob: string
  keys: Keyspace
}

export interface ReplayPlan {
  /** Per selected change: what it becomes now (the workflows of this release route it again). */
  batches: BatchPlan[]
  runs: ReplayRun[]
  /** Selected changes that start no selected workflow now, or cannot be planned (quarantined). */
  unmatched: number
  invalid: number
}

export type ReplayConfig = Pick<Config, 'STEP_ATTEMPTS' | 'STEP_BACKOFF' | 'KEEP_COMPLETED' | 'KEEP_COMPLETED_AGE'>

/**
 * Plans the selected changes as ingest would (same routing, rows, job options), under their own
 * identity (`generation` 0: only runs a change never had start) or a forced generation's (each
 * selected run starts again, under new job ids and idempotency keys).
 */
export function planReplay (entries: readonly JournalEntry[], workflows: readonly Workflow[], config: ReplayConfig, layout: Layout, selection: ReplaySelection, generation: number, batchSize = 100): ReplayPlan {
  const jobOptions = createJobOptions(workflows, config)
  const only = selection.workflows && new Set(selection.workflows)
  const plan: ReplayPlan = { batches: [], runs: [], unmatched: 0, invalid: 0 }
  for (let at = 0; at < entries.length; at += batchSize) {
    const messages = entries.slice(at, at + batchSize).map((entry) => entry.message)
    const changeId = generation > 0 ? (own: string) => replayChangeId(own, generation) : undefined
    const planned = planBatch(messages, workflows, jobOptions, new Date(), { changeId })
    plan.invalid += planned.quarantine.length
    plan.unmatched += planned.unmatched
    const changes: PlannedChange[] = []
    for (const change of planned.changes) {
      const jobs = change.jobs.filter((job) => !only || only.has(job.queue))
      if (jobs.length === 0) {
        plan.unmatched++
        continue
      }
      changes.push({ ...change, jobs, again: generation === 0, forced: generation > 0 })
      for (const job of jobs) {
        plan.runs.push({ changeId: change.changeId, workflow: job.queue, run: job.run!, firstJob: job.id, keys: layout.shards[layout.shardOf(job.row ?? change.changeId)]! })
      }
    }
    // Nothing but the selected runs: no quarantine, no late-detection positions of unmatched changes.
    if (changes.length > 0) plan.batches.push({ ...planned, changes, quarantine: [], positions: [], unmatched: 0, unmatchedChanges: [] })
  }
  return plan
}

export type RunStatus = 'absent' | 'pending' | 'finished' | 'failed'

/**
 * Where a run is: `absent` (it never started: no finished marker, record or first job),
 * `finished`, `failed` (its current step failed for good) or `pending` (waiting, running).
 */
export async function runStatus (redis: RedisClient, run: ReplayRun): Promise<RunStatus> {
  const { keys } = run
  const [marker, current, record, first] = await Promise.all([
    redis.hget(keys.seen(run.changeId), run.workflow),
    redis.hget(keys.run(run.run), 'cj'),
    redis.exists(keys.run(run.run)),
    redis.exists(keys.job(run.workflow, run.firstJob)),
  ])
  if (marker === 'd') return 'finished'
  if (record === 0 && first === 0) return 'absent'
  const failed = await redis.zscore(keys.queue(run.workflow).failed!, current ?? run.firstJob)
  return failed === null ? 'pending' : 'failed'
}

export interface ReplayLimits {
  dedupTtlMs: number
  quarantineLimit: number
  replication: { replicas: number, timeoutMs: number }
}

/** Writes the replay's plans through the ingest path (row queues, dedup, lateness); `done` after each batch. */
export async function commitReplay (redis: RedisClient, layout: Layout, plan: ReplayPlan, limits: ReplayLimits, done: (batch: BatchPlan) => Promise<void>): Promise<{ late: number, skipped: number, dropped: number }> {
  const scripted = withScripts(redis)
  const totals = { late: 0, skipped: 0, dropped: 0 }
  for (const batch of plan.batches) {
    const committed = await commitBatch(scripted, layout, batch, limits, Date.now(), limits.replication)
    if (!committed.ok) throw new Error('the quarantine refused a replay batch') // a replay quarantines nothing
    totals.late += committed.late
    totals.skipped += committed.skipped
    totals.dropped += committed.dropped
    await done(batch)
  }
  return totals
}
