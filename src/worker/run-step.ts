import { UnrecoverableError, type Job } from 'bullmq'
import type { Logger } from 'pino'
import { QUARANTINE_QUEUE, type Keyspace } from '../keys.ts'
import type { Metrics } from '../metrics.ts'
import type { RowKeyFields } from '../row-keys.ts'
import { idempotencyKey, stepJobId } from '../ingest/identity.ts'
import type { JobOptions, StepJobData } from '../ingest/plan.ts'
import { CARRIED_RESULTS_MAX_BYTES } from '../ingest/job-data.ts'
import { declaredKeys } from '../redis/declared-keys.ts'
import type { ScriptedRedis } from '../redis/scripts.ts'
import { toChange } from '../workflows/change.ts'
import { PermanentError, type Workflow } from '../workflows/define.ts'
import { StepJob } from './step-job.ts'

export interface StepRunnerDeps {
  redis: ScriptedRedis
  keys: Keyspace
  workflows: readonly Workflow[]
  jobOptions: JobOptions
  /** How long a run's step results are kept: as long as its change is deduplicated. */
  runTtlMs: number
  log: Logger
  /** How log lines show a row's primary key (LOG_ROW_KEYS). */
  rowKey: RowKeyFields
  metrics: Metrics
}

function toJson (value: unknown, step: string): string {
  try {
    return JSON.stringify(value ?? null) ?? 'null'
  } catch (error) {
    throw new PermanentError(`step ${step} returned a value that is not JSON: ${(error as Error).message}`)
  }
}

/** An object's JSON with one more member, given as JSON (none when `valueJson` is undefined). */
function withMember (objectJson: string, name: string, valueJson: string | undefined): string {
  if (valueJson === undefined) return objectJson
  const member = `${JSON.stringify(name)}:${valueJson}`
  return objectJson === '{}' ? `{${member}}` : `${objectJson.slice(0, -1)},${member}}`
}

/** The earlier results with this step's, as JSON. */
function withResult (results: Record<string, unknown>, name: string, resultJson: string): string {
  // A result of this step already among them (only a job made by hand could carry one) is replaced.
  if (Object.hasOwn(results, name)) return JSON.stringify({ ...results, [name]: JSON.parse(resultJson) as unknown })
  return withMember(JSON.stringify(results), name, resultJson)
}

/**
 * The earlier steps' results a job carries, when it carries every one of them. A worker of the
 * previous release spread a job's data into the next job's, `results` included, without the step
 * it ran: such a job carries too few, and its step reads the run's record.
 */
function carriedResults (data: StepJobData, workflow: Workflow): Record<string, unknown> | undefined {
  const results = data.results
  if (results === undefined) return undefined
  return workflow.steps.slice(0, data.stepIndex).every((earlier) => Object.hasOwn(results, earlier.name)) ? results : undefined
}

/**
 * The processor of every workflow queue. A step runs, then one script records its result,
 * releases the next step and (for a StepJob, which is what StepWorker runs) completes the job.
 * A job started again (the worker died before that script, or its reply was lost) reads the
 * run's record first: a step recorded before is not executed again, its result is returned.
 */
export function createStepRunner ({ redis, keys, workflows, jobOptions, runTtlMs, log, rowKey, metrics }: StepRunnerDeps) {
  const byName = new Map(workflows.map((workflow) => [workflow.name, workflow]))
  // A finished run starts its row's next one, of any workflow this process knows.
  const queueKeys = [...workflows.map((workflow) => workflow.name), QUARANTINE_QUEUE].flatMap((name) => keys.queueKeysTouched(name))

  return async function runStep (job: Job<StepJobData>): Promise<unknown> {
    const data = job.data
    const workflow = byName.get(data.workflow)
    const step = workflow?.steps[data.stepIndex]
    if (!workflow || !step || step.name !== data.step) {
      throw new UnrecoverableError(`workflow ${data.workflow} has no step ${data.step} at position ${data.stepIndex + 1} (was it changed while this run was in flight?)`)
    }

    const runKey = keys.run(data.run)
    const seenKey = keys.seen(data.changeId)
    const carried = carriedResults(data, workflow)
    let results: Record<string, unknown>
    let late = data.late === true
    if (carried !== undefined && job.attemptsStarted <= 1 && job.id === stepJobId(data.run, data.step)) {
      // The first start of a job this service made: nothing of this step can be recorded yet (a
      // job that ran before was started before, and BullMQ counts starts; a retry keeps the
      // count), and the earlier results came with the job. A job added by hand under another
      // id (a dashboard's copy) reads the record.
      results = carried
    } else {
      // Started again (after a crash, a lost lock, a retry), or a job that carries nothing: the
      // run's record, and its end marker in its change's dedup hash, in one round trip.
      const [[, record], [, ended]] = await redis.multi().hgetall(runKey).hget(seenKey, workflow.name).exec() as [[unknown, Record<string, string>], [unknown, string | null]]
      const stored = record ?? {}
      if (ended === 'd') return null // finished: a step re-run after a crash is not executed again
      if (stored.discarded !== undefined) {
        log.warn({ workflow: workflow.name, step: step.name, run: data.run, jobId: job.id }, 'the run was discarded by an operator: its step is not run again')
        return null
      }
      const done = stored[`r${data.stepIndex}`]
      if (done !== undefined) return JSON.parse(done)
      late ||= stored.late === '1'
      results = carried ?? {}
      if (carried === undefined) {
        workflow.steps.slice(0, data.stepIndex).forEach((earlier, i) => {
          const json = stored[`r${i}`]
          if (json !== undefined) results[earlier.name] = JSON.parse(json)
        })
      }
    }
    // Made when something logs (or the step asks for it): the row key's hash is not free.
    let child: Logger | undefined
    const stepLog = (): Logger => {
      child ??= log.child({
        workflow: workflow.name,
        step: step.name,
        run: data.run,
        table: data.table,
        ...rowKey(data.table, data.key),
        action: data.action,
        jobId: job.id,
      })
      return child
    }
    const attempt = job.attemptsMade + 1
    const started = performance.now()
    if (log.isLevelEnabled('debug')) stepLog().debug({ attempt }, 'step started')

    if (late && data.stepIndex === 0) stepLog().warn({ commitTimestamp: data.commitTimestamp }, 'late change: older than one already accepted for this row')
    const result = await step.run({
      change: toChange(data.change, late),
      results,
      attempt,
      get log () { return stepLog() },
      idempotencyKey: idempotencyKey(workflow.name, step.name, data.changeId),
      workflow: workflow.name,
      step: step.name,
    })

    const next = workflow.steps[data.stepIndex + 1]
    const resultJson = toJson(result, step.name)
    const argv: Array<string | number> = [
      keys.bullPrefix, keys.own, data.stepIndex, resultJson, runTtlMs, Date.now(),
      data.run, workflow.name, data.row ?? '', seenKey,
    ]
    if (next) {
      const { results: _carried, ...rest } = data
      const nextData: Omit<StepJobData, 'results'> = { ...rest, step: next.name, stepIndex: data.stepIndex + 1 }
      // Carried while small; past that the next steps read the run's record. The result joins
      // the earlier ones as the JSON it is recorded as: nothing is serialised twice.
      const passed = carried === undefined ? undefined : withResult(results, step.name, resultJson)
      const carry = passed !== undefined && Buffer.byteLength(passed) <= CARRIED_RESULTS_MAX_BYTES
      argv.push(stepJobId(data.run, next.name), next.name, withMember(JSON.stringify(nextData), 'results', carry ? passed : undefined), jobOptions.step(workflow.name, next.name))
    }
    const declared = declaredKeys(redis, runKey, function * () {
      yield seenKey
      yield keys.tripwire()
      yield keys.rows()
      yield keys.blocked('failed')
      yield keys.blocked('orphaned')
      yield keys.discardedQueues()
      if (data.row) yield keys.rowQueue(data.row)
      if (next) yield keys.job(workflow.name, stepJobId(data.run, next.name))
      yield * queueKeys
    })
    const seconds = (performance.now() - started) / 1000
    const recorded = () => {
      const labels = { workflow: workflow.name, step: step.name }
      metrics.stepsCompleted.inc(labels)
      metrics.stepDuration.observe(labels, seconds)
      if (next) metrics.stepsEnqueued.inc({ workflow: workflow.name, step: next.name })
      else metrics.runLag.observe({ workflow: workflow.name }, Math.max(0, Date.now() - Date.parse(data.commitTimestamp)) / 1000)
      if (log.isLevelEnabled('info')) stepLog().info({ attempt, ms: Math.round(seconds * 1000), next: next?.name ?? null }, 'step completed')
    }
    if (job instanceof StepJob) {
      // Recorded when BullMQ completes the job, in the same script (step-job.ts).
      job.completion = { redis, keys: declared, args: argv, recorded }
    } else {
      await redis.cfAdvance(declared.length, ...declared, ...argv)
      recorded()
    }
    return result
  }
}
