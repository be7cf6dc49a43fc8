import { Worker, type Job } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import { QUARANTINE_QUEUE } from '../keys.ts'
import { markBlocked } from '../runs/rows.ts'
import { createQuarantineRunner, type QuarantineDeps } from './quarantine.ts'
import { createStepRunner, type StepRunnerDeps } from './run-step.ts'

export type WorkerConfig = Pick<Config, 'WORKER_CONCURRENCY' | 'LOCK_DURATION' | 'MAX_STALLED_COUNT' | 'STALLED_INTERVAL'>

export interface Workers {
  readonly workers: readonly Worker[]
  /** Stops taking jobs and waits for active ones (BullMQ's graceful close). */
  close (): Promise<void>
}

/**
 * One BullMQ worker per workflow queue, plus the quarantine's. `connection` must be created with
 * `maxRetriesPerRequest: null` so a Redis outage pauses workers instead of failing them.
 */
export function startWorkers (config: WorkerConfig, connection: Redis, deps: StepRunnerDeps & QuarantineDeps): Workers {
  const log: Logger = deps.log
  const common = {
    connection,
    prefix: deps.keys.bullPrefix,
    concurrency: config.WORKER_CONCURRENCY,
    lockDuration: config.LOCK_DURATION,
    maxStalledCount: config.MAX_STALLED_COUNT,
    stalledInterval: config.STALLED_INTERVAL,
    // After a Redis error (a restart, maxmemory) fetch again within a second, not BullMQ's 15 s.
    runRetryDelay: 1_000,
  }
  const runStep = createStepRunner(deps)
  const workers: Worker[] = deps.workflows.map((workflow) => new Worker(workflow.name, runStep, common))
  workers.push(new Worker(QUARANTINE_QUEUE, createQuarantineRunner(deps), { ...common, concurrency: 1 }))

  for (const worker of workers) {
    worker.on('failed', (job: Job | undefined, error: Error) => {
      if (!job) return
      const attempts = job.opts.attempts ?? 1
      const final = job.attemptsMade >= attempts || error.name === 'UnrecoverableError' || error.name === 'PermanentError'
      const { table, key, action, run } = (job.data ?? {}) as { table?: string, key?: string[], action?: string, run?: string }
      const fields = { queue: worker.name, jobId: job.id, step: job.name, run, table, key, action, attempt: job.attemptsMade, attempts, err: error }
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
          markBlocked(deps.redis, deps.keys, job.data.row, worker.name, job.id, 'failed')
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
