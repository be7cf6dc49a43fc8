import { Worker, type Job } from 'bullmq'
import type { RedisClient } from '../redis/connection.ts'
import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import { QUARANTINE_QUEUE, type Keyspace, type Layout } from '../keys.ts'
import { markBlocked } from '../runs/rows.ts'
import { createQuarantineRunner, type QuarantineDeps } from './quarantine.ts'
import type { Tracing } from '../tracing/tracing.ts'
import { failsForGood } from './outcome.ts'
import { createStepRunner, type StepRunnerDeps } from './run-step.ts'
import { StepWorker } from './step-job.ts'

export type WorkerConfig = Pick<Config, 'WORKER_CONCURRENCY' | 'LOCK_DURATION' | 'MAX_STALLED_COUNT' | 'STALLED_INTERVAL'>

export interface Workers {
  readonly workers: readonly Worker[]
  /** Stops taking jobs and waits for active ones (BullMQ's graceful close). */
  close (): Promise<void>
}

export type WorkerDeps = Omit<StepRunnerDeps, 'keys'> & QuarantineDeps & {
  /** The shards this process consumes (WORKER_SHARDS; all by default). */
  shards: readonly number[]
  tracing?: Pick<Tracing, 'steps'>
}

/**
 * One BullMQ worker per workflow queue per shard consumed, plus the quarantine's (it lives in
 * shard 0). `connection` must be created with `maxRetriesPerRequest: null` so a Redis outage
 * pauses workers instead of failing them.
 */
export function startWorkers (config: WorkerConfig, connection: RedisClient, deps: WorkerDeps): Workers {
  const log: Logger = deps.log
  const layout: Layout = deps.layout
  const common = {
    connection,
    concurrency: config.WORKER_CONCURRENCY,
    lockDuration: config.LOCK_DURATION,
    maxStalledCount: config.MAX_STALLED_COUNT,
    stalledInterval: config.STALLED_INTERVAL,
    // After a Redis error (a restart, maxmemory) fetch again within a second, not BullMQ's 15 s.
    runRetryDelay: 1_000,
  }
  const started: Array<{ worker: Worker, keys: Keyspace }> = []
  for (const shard of deps.shards) {
    const keys = layout.shards[shard]!
    const untraced = createStepRunner({ ...deps, keys })
    const runStep = deps.tracing?.steps(untraced) ?? untraced
    for (const workflow of deps.workflows) started.push({ worker: new StepWorker(workflow.name, runStep, { ...common, prefix: keys.bullPrefix }), keys })
  }
  if (deps.shards.includes(0)) {
    const worker = new Worker(QUARANTINE_QUEUE, createQuarantineRunner(deps), { ...common, prefix: layout.home.bullPrefix, concurrency: 1 })
    started.push({ worker, keys: layout.home })
  }
  const workers = started.map(({ worker }) => worker)

  for (const { worker, keys } of started) {
    worker.on('failed', (job: Job | undefined, error: Error) => {
      if (!job) return
      const attempts = job.opts.attempts ?? 1
      const final = failsForGood(job.attemptsMade, attempts, error)
      const { table, key, action, run } = (job.data ?? {}) as { table?: string, key?: string[], action?: string, run?: string }
      const row = table !== undefined && key !== undefined ? deps.rowKey(table, key) : {}
      const fields = { queue: worker.name, jobId: job.id, step: job.name, run, table, ...row, action, attempt: job.attemptsMade, attempts, err: error }
      if (worker.name === QUARANTINE_QUEUE) {
        log.warn(fields, 'quarantined message still invalid')
        return
      }
      const labels = { workflow: worker.name, step: job.name }
      if (final) {
        deps.metrics.stepsFailed.inc(labels)
        log.error(fields, 'step failed for good: its run stops here until an operator retries it')
        if (job.data?.row && job.id) {
          // Counted as blocked (metric, CLI) from now until the row moves again.
          markBlocked(deps.redis, keys, job.data.row, worker.name, job.id, 'failed')
            .catch((err: unknown) => log.warn({ err, queue: worker.name, jobId: job.id }, 'could not record the blocked row; the reconciler will'))
          // Shown in the dashboard's Logs tab of the failed job: what this failure holds up.
          job.log(`This run blocks its row (${job.data.table} ${JSON.stringify(job.data.key)}): later changes of the row wait. Retry this job to continue the run, or remove it to discard the run and let the row move on.`).catch(() => {})
        }
      } else {
        deps.metrics.stepsRetried.inc(labels)
        log.warn(fields, 'step failed; it will be retried with backoff')
      }
    })
    // While Redis is down or full every fetch fails: the same error is logged once every 10 s.
    let last = { message: '', at: 0 }
    worker.on('error', (error) => {
      const now = Date.now()
      if (error.message === last.message && now - last.at < 10_000) return
      last = { message: error.message, at: now }
      log.error({ queue: worker.name, err: error }, 'worker error')
    })
  }

  return {
    workers,
    async close () {
      await Promise.all(workers.map((worker) => worker.close()))
    },
  }
}
