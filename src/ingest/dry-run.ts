import type { Config } from '../config.ts'
import type { Layout } from '../keys.ts'
import type { RedisClient } from '../redis/connection.ts'
import type { Workflow } from '../workflows/define.ts'
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
   * because its change was already accepted (`duplicate`), the run already exists (`known`), or
   * an operator gave its workflow up (`workflow-discarded`).
   */
  verdict: 'start' | 'duplicate' | 'known' | 'workflow-discarded'
  steps: Array<{ step: string, jobId: string, idempotencyKey: string }>
}

export interface PlannedMessage {
  index: number
  outcome: 'accepted' | 'duplicate' | 'unmatched' | 'quarantined'
  table?: string
  action?: string
  changeId?: string
  runs?: PlannedRun[]
  /** Why a quarantined message would be kept, and its quarantine job id. */
  issues?: Rejection['issues']
  quarantineJobId?: string
}

export interface DryRun {
  dryRun: true
  /** The status the webhook would answer this body with now: 200, or 422 under INVALID_MESSAGES=reject. */
  status: 200 | 422
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
  config: Pick<Config, 'MAX_BATCH_MESSAGES' | 'INVALID_MESSAGES'>
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
  try {
    changes = await Promise.all(plan.changes.map((change) => judge(deps, change)))
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
  const rejected = plan.quarantine.length > 0 && deps.config.INVALID_MESSAGES === 'reject'
  return {
    kind: 'planned',
    result: {
      dryRun: true,
      status: rejected ? 422 : 200,
      counts: { accepted: count('accepted'), duplicates: count('duplicate'), unmatched: count('unmatched'), quarantined: count('quarantined') },
      messages,
    },
  }
}

function quarantined (plan: BatchPlan): PlannedMessage[] {
  const ids = new Map(plan.quarantine.map((entry) => [entry.index, entry.id]))
  return rejectionsOf(plan).map(({ index, issues }) => ({ index, outcome: 'quarantined', issues, quarantineJobId: ids.get(index) }))
}

/** As the ingest script decides, per shard of its runs: a change already seen adds nothing, nor does a run that exists. */
async function judge (deps: DryRunDeps, change: PlannedChange): Promise<PlannedMessage> {
  const { redis, layout } = deps
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
    const verdict: PlannedRun['verdict'] = marked === 1
      ? 'duplicate'
      : discarded === 1 ? 'workflow-discarded' : exists === 1 || finished === 1 || head === `${job.queue}/${job.run}/${job.id}` ? 'known' : 'start'
    return { workflow: job.queue, run: job.run ?? '', ordered: job.ordered ?? false, verdict, steps: stepsOf(deps.workflows, job, change.changeId) }
  }))
  // Accepted when any shard would take something new of it (a run given up counts: it is marked seen).
  const fresh = runs.some((run) => run.verdict === 'start' || run.verdict === 'workflow-discarded')
  return { index: change.index, outcome: fresh ? 'accepted' : 'duplicate', table: change.table, action: change.action, changeId: change.changeId, runs }
}

function stepsOf (workflows: readonly Workflow[], job: JobSpec, change: string): PlannedRun['steps'] {
  const workflow = workflows.find((candidate) => candidate.name === job.queue)
  return (workflow?.steps ?? []).map((step) => ({
    step: step.name,
    jobId: stepJobId(job.run ?? '', step.name),
    idempotencyKey: idempotencyKey(workflow!.name, step.name, change),
  }))
}
