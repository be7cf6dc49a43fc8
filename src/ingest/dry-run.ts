import type { Config } from '../config.ts'
import { QUARANTINE_QUEUE, type Layout } from '../keys.ts'
import type { RedisClient } from '../redis/connection.ts'
import type { Workflow } from '../workflows/define.ts'
import { comparePositions } from '../sequin/position.ts'
import { idempotencyKey, stepJobId } from './identity.ts'
import { prepareBatch, rejectionsOf, unavailability, type Refusal } from './ingest.ts'
import type { BatchPlan, JobOptions, JobSpec, PlannedChange, Rejection } from './plan.ts'

/** A run a change would start: its workflow, its steps' job ids and idempotency keys. */
export interface PlannedRun {
  workflow: string
  run: string
  /** Waits behind the earlier runs of its row (per-row order). */
  ordered: boolean
  /**
   * What the webhook would do with it now: `start` it (or park it behind its row), or not,
   * because its change was already accepted (`duplicate`), the run already exists (`known`), an
   * operator gave its workflow up (`workflow-discarded`), or the change is late and its workflow
   * skips late changes (`skip-late`).
   */
  verdict: 'start' | 'duplicate' | 'known' | 'workflow-discarded' | 'skip-late'
  steps: Array<{ step: string, jobId: string, idempotencyKey: string }>
}

export interface PlannedMessage {
  index: number
  outcome: 'accepted' | 'duplicate' | 'unmatched' | 'quarantined'
  table?: string
  action?: string
  changeId?: string
  /** Older than a change already accepted for its row: its runs see `change.late`, or are skipped. */
  late?: true
  runs?: PlannedRun[]
  /** Why a quarantined message would be kept, and its quarantine job id. */
  issues?: Rejection['issues']
  quarantineJobId?: string
}

export interface DryRun {
  dryRun: true
  /**
   * The status the webhook would answer this body with now: 200, or 422 when it holds invalid
   * messages under INVALID_MESSAGES=reject, or ones a full quarantine cannot take (QUARANTINE_LIMIT).
   */
  status: 200 | 422
  /** The webhook's error code when it would refuse the body. */
  code?: 'CF_INVALID_MESSAGES' | 'CF_QUARANTINE_FULL'
  counts: { accepted: number, duplicates: number, unmatched: number, quarantined: number }
  /** One per message, in the body's order. */
  messages: PlannedMessage[]
}

export type DryRunOutcome = { kind: 'planned', result: DryRun } | Refusal | { kind: 'unavailable', reason: string }

export interface DryRunDeps {
  /** Read only: a dry run writes nothing. */
  redis: RedisClient
  layout: Layout
  workflows: readonly Workflow[]
  jobOptions: JobOptions
  config: Pick<Config, 'MAX_BATCH_MESSAGES' | 'INVALID_MESSAGES' | 'QUARANTINE_LIMIT'>
}

/**
 * What the webhook would do with a body, enqueuing nothing: the same parsing, validation and
 * routing (ingest's own planning), then the same questions the ingest script asks Redis, read only.
 */
export async function dryRun (text: string, deps: DryRunDeps): Promise<DryRunOutcome> {
  const prepared = prepareBatch(text, deps.workflows, deps.jobOptions, deps.config)
  if (!prepared.ok) return prepared.outcome
  const { plan } = prepared
  let changes: PlannedMessage[]
  let refused: DryRun['code']
  try {
    changes = repeatsAsDuplicates(await Promise.all(plan.changes.map((change) => judge(deps, change))))
    if (plan.quarantine.length > 0) {
      if (deps.config.INVALID_MESSAGES === 'reject') refused = 'CF_INVALID_MESSAGES'
      else if (await quarantineFull(deps, plan)) refused = 'CF_QUARANTINE_FULL'
    }
  } catch (error) {
    const reason = unavailability(error, deps.redis)
    if (reason === null) throw error
    return { kind: 'unavailable', reason }
  }
  const messages = [
    ...changes,
    ...plan.unmatchedChanges.map(({ index, table, action }): PlannedMessage => ({ index, outcome: 'unmatched', table, action })),
    ...quarantined(plan),
  ].sort((a, b) => a.index - b.index)
  const count = (outcome: PlannedMessage['outcome']) => messages.filter((message) => message.outcome === outcome).length
  return {
    kind: 'planned',
    result: {
      dryRun: true,
      status: refused ? 422 : 200,
      ...(refused ? { code: refused } : {}),
      counts: { accepted: count('accepted'), duplicates: count('duplicate'), unmatched: count('unmatched'), quarantined: count('quarantined') },
      messages,
    },
  }
}

/** As the ingest script asks: would the body's new quarantined messages take the quarantine past QUARANTINE_LIMIT? */
async function quarantineFull ({ redis, layout, config }: DryRunDeps, plan: BatchPlan): Promise<boolean> {
  const keys = layout.home
  const queue = keys.queue(QUARANTINE_QUEUE)
  const [held, known] = await Promise.all([
    Promise.all([
      ...['wait', 'active', 'paused'].map((state) => redis.llen(queue[state]!)),
      ...['failed', 'delayed', 'prioritized'].map((state) => redis.zcard(queue[state]!)),
    ]),
    Promise.all(plan.quarantine.map((entry) => redis.exists(keys.job(QUARANTINE_QUEUE, entry.id)))),
  ])
  const adding = known.filter((exists) => exists === 0).length
  return adding > 0 && held.reduce((sum, n) => sum + n, 0) + adding > config.QUARANTINE_LIMIT
}

function quarantined (plan: BatchPlan): PlannedMessage[] {
  const ids = new Map(plan.quarantine.map((entry) => [entry.index, entry.id]))
  return rejectionsOf(plan).map(({ index, issues }) => ({ index, outcome: 'quarantined', issues, quarantineJobId: ids.get(index) }))
}

/**
 * A change a body holds twice (Sequin redelivering it in the same batch) is written once: the
 * ingest script marks it seen on its first copy, in commit order (the plan's), and finds the
 * others duplicates.
 */
function repeatsAsDuplicates (changes: PlannedMessage[]): PlannedMessage[] {
  const seen = new Set<string>()
  return changes.map((change) => {
    if (!seen.has(change.changeId!)) {
      seen.add(change.changeId!)
      return change
    }
    return { ...change, outcome: 'duplicate', runs: change.runs?.map((run) => ({ ...run, verdict: 'duplicate' })) }
  })
}

/** As the ingest script decides, per shard of its runs: a change already seen adds nothing, nor does a run that exists. */
async function judge (deps: DryRunDeps, change: PlannedChange): Promise<PlannedMessage> {
  const { redis, layout } = deps
  const late = await isLate(redis, layout, change)
  const runs = await Promise.all(change.jobs.map(async (job): Promise<PlannedRun> => {
    const keys = layout.shards[layout.shardOf(job.row ?? change.changeId)]!
    const seen = keys.seen(change.changeId)
    const [marked, discarded, exists, finished, head] = await Promise.all([
      redis.hexists(seen, '_'),
      redis.sismember(keys.discardedQueues(), job.queue),
      job.run ? redis.exists(keys.run(job.run)) : 0,
      redis.hexists(seen, job.queue),
      job.ordered && job.row ? redis.lindex(keys.rowQueue(job.row), 0) : null,
    ])
    const known = exists === 1 || finished === 1 || head === `${job.queue}/${job.run}/${job.id}`
    let verdict: PlannedRun['verdict'] = late && job.skipLate ? 'skip-late' : 'start'
    if (marked === 1) verdict = 'duplicate'
    else if (discarded === 1) verdict = 'workflow-discarded'
    else if (known) verdict = 'known'
    return { workflow: job.queue, run: job.run ?? '', ordered: job.ordered ?? false, verdict, steps: stepsOf(deps.workflows, job, change.changeId) }
  }))
  // Accepted when any shard would take something new of it (a run given up counts: it is marked seen).
  const fresh = runs.some((run) => run.verdict === 'start' || run.verdict === 'workflow-discarded' || run.verdict === 'skip-late')
  return {
    index: change.index,
    outcome: fresh ? 'accepted' : 'duplicate',
    table: change.table,
    action: change.action,
    changeId: change.changeId,
    ...(fresh && late ? { late: true } : {}),
    runs,
  }
}

/**
 * As the ingest script (or, for runs in other shards, lua/late.lua) decides, in the primary-key
 * row's shard: a verdict kept for the change, else its position against the row's newest. The
 * body's own changes go in commit order, so none is late behind another of the same body.
 */
async function isLate (redis: RedisClient, layout: Layout, change: PlannedChange): Promise<boolean> {
  const pkRow = change.jobs[0]?.pkRow
  if (!change.version || !pkRow) return false
  const keys = layout.shards[layout.shardOf(pkRow)]!
  const [decided, newest] = await Promise.all([redis.hget(keys.seen(change.changeId), 'L'), redis.get(keys.rowVersion(pkRow))])
  if (decided !== null) return decided === '1'
  const position = /^(\d+):(\d+)$/.exec(newest ?? '')
  return position !== null && comparePositions(change.version, [position[1]!, position[2]!]) < 0
}

function stepsOf (workflows: readonly Workflow[], job: JobSpec, change: string): PlannedRun['steps'] {
  const workflow = workflows.find((candidate) => candidate.name === job.queue)
  return (workflow?.steps ?? []).map((step) => ({
    step: step.name,
    jobId: stepJobId(job.run ?? '', step.name),
    idempotencyKey: idempotencyKey(workflow!.name, step.name, change),
  }))
}
