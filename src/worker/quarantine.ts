import { UnrecoverableError, type Job } from 'bullmq'
import type { Layout } from '../keys.ts'
import { commitBatch } from '../ingest/shards.ts'
import { planBatch, type JobOptions } from '../ingest/plan.ts'
import type { QuarantineJobData } from '../ingest/job-data.ts'
import type { ScriptedRedis } from '../redis/scripts.ts'
import type { Workflow } from '../workflows/define.ts'

export interface QuarantineDeps {
  redis: ScriptedRedis
  layout: Layout
  workflows: readonly Workflow[]
  jobOptions: JobOptions
  dedupTtlMs: number
}

/**
 * A quarantined message is a job that re-ingests itself. The first attempt fails with the
 * message's errors, which is how it stays visible in the dashboard; retrying it after a fix
 * (to the workflow code, or to the Sequin transform that reshaped it) re-drives it through
 * validation, routing and the same deduplication as the webhook.
 */
export function createQuarantineRunner ({ redis, layout, workflows, jobOptions, dedupTtlMs }: QuarantineDeps) {
  return async function redrive (job: Job<QuarantineJobData>) {
    if (job.data.message === undefined && job.data.excerpt !== undefined) {
      throw new UnrecoverableError(`${job.data.issues.map((issue) => issue.message).join('; ')}: only an excerpt was kept, ` +
        'so it cannot be re-driven. Fix the row in Postgres (or have Sequin re-send it, with a backfill of the row) and drop this entry')
    }
    const plan = planBatch([job.data.message], workflows, jobOptions, new Date())
    const rejected = plan.quarantine[0]
    if (rejected) {
      throw new UnrecoverableError(`${rejected.name}: ${rejected.issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ')}`)
    }
    // A redriven message leaves the quarantine: no limit applies to it.
    const committed = await commitBatch(redis, layout, plan, { dedupTtlMs, quarantineLimit: Number.MAX_SAFE_INTEGER }, Date.now(), { replicas: 0, timeoutMs: 0 })
    if (!committed.ok) throw new Error('unreachable: a redrive has no quarantine limit')
    return { accepted: committed.accepted.filter(Boolean).length, unmatched: plan.unmatched, jobs: committed.jobs }
  }
}
