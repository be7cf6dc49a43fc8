import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import type { Redis } from 'ioredis'
import { projectRoot } from '../../src/config.ts'
import type { ScenarioLine } from './fault-report.ts'
import type { SimulatedMessage } from '../../src/simulate/sequin.ts'
import { startService, type Service } from './service.ts'
import { logSink, suiteLog, tee } from './suite-logs.ts'
import { SOURCE_NODE_ARGS } from '../../scripts/lib/source-node.ts'

export const proofJobsDir = join(projectRoot, 'test/fixtures/proof-jobs')

/**
 * The webhook in this process, listening on a free loopback port, with the proof workflows. It
 * logs at info (the production default) into the suite's log file `<test>.web-in-process-<n>`.
 */
export async function startProofWeb (options: { redisUrl?: string, env?: Record<string, string> } = {}): Promise<{ service: Service, url: string }> {
  const service = await startService({
    workers: false,
    redisUrl: options.redisUrl,
    env: { JOBS_DIR: proofJobsDir, ...options.env },
    logs: logSink(suiteLog('web-in-process')),
  })
  await service.web.app.listen({ host: '127.0.0.1', port: 0 })
  const url = `http://127.0.0.1:${(service.web.app.server.address() as AddressInfo).port}/webhooks/sequin`
  return { service, url }
}

/**
 * A `npm run worker` process of the project (run directly, so that SIGKILL reaches it). Its
 * output goes to the suite's log file `<test>.<name>-<n>`; stderr is shown in the test output too.
 */
export function spawnWorker (env: Record<string, string>, name = 'worker'): ChildProcess {
  const child = spawn(process.execPath, [...SOURCE_NODE_ARGS, join(projectRoot, 'src/main/worker.ts')], {
    cwd: projectRoot,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      JOBS_DIR: proofJobsDir,
      WORKER_CONCURRENCY: '8',
      LOCK_DURATION: '1500ms',
      STALLED_INTERVAL: '500ms',
      MAX_STALLED_COUNT: '100',
      RECONCILE_INTERVAL: '1s',
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const log = suiteLog(name)
  tee(child.stdout!, log)
  tee(child.stderr!, log)
  child.stderr!.pipe(process.stderr, { end: false })
  return child
}

export async function stopWorker (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill(signal)
  await exited
}

export type Figures = {
  changes: number
  runsExpected: number
  runsCompleted: number
  lost: number
  duplicatedEffects: number
  orderViolations: number
  lateRuns: number
}

interface Effect { lsn: number, step: number, late: boolean }
const STEPS = ['debit', 'credit']

function parseEffect (entry: string): Effect {
  const [lsn, step, late] = entry.split(':')
  return { lsn: Number(lsn), step: STEPS.indexOf(step!), late: late === 'late' }
}

export async function readEffects (redis: Redis, prefix: string, workflow: string, row: number): Promise<Effect[]> {
  return (await redis.lrange(`{${prefix}}:proof:effects:${workflow}:${row}`, 0, -1)).map(parseEffect)
}

/** The effects of many rows, read in pipelines of 500 (a load test has tens of thousands). */
export async function readEffectsOfRows (redis: Redis, prefix: string, workflow: string, rows: readonly number[]): Promise<Map<number, Effect[]>> {
  const byRow = new Map<number, Effect[]>()
  for (let i = 0; i < rows.length; i += 500) {
    const chunk = rows.slice(i, i + 500)
    const pipeline = redis.pipeline()
    for (const row of chunk) pipeline.lrange(`{${prefix}}:proof:effects:${workflow}:${row}`, 0, -1)
    const answers = (await pipeline.exec()) ?? []
    chunk.forEach((row, k) => {
      const [error, entries] = answers[k] ?? [new Error('no answer'), null]
      if (error) throw error
      byRow.set(row, (entries as string[]).map(parseEffect))
    })
  }
  return byRow
}

/** Runs whose last step applied its effect, over `rows`. */
export async function completedRuns (redis: Redis, prefix: string, workflow: string, rows: readonly number[], steps = 2): Promise<number> {
  let total = 0
  for (const effects of (await readEffectsOfRows(redis, prefix, workflow, rows)).values()) {
    total += effects.filter((e) => e.step === steps - 1).length
  }
  return total
}

/**
 * Lost: a change whose effects (one a step, `steps` of them) are not all there. Duplicated: an
 * effect applied twice. Order violation: within a row, an effect (not of a late run) that comes
 * before an effect of an earlier change or step it should have followed.
 */
export async function figures (redis: Redis, prefix: string, workflow: string, messages: SimulatedMessage[],
  expectedOf: (row: number, all: SimulatedMessage[]) => SimulatedMessage[] = (_row, all) => all, steps = 2): Promise<Figures> {
  const rows = new Map<number, SimulatedMessage[]>()
  for (const message of messages) {
    const all = rows.get(message.row)
    if (all) all.push(message)
    else rows.set(message.row, [message])
  }
  const result: Figures = { changes: messages.length, runsExpected: 0, runsCompleted: 0, lost: 0, duplicatedEffects: 0, orderViolations: 0, lateRuns: 0 }
  const effectsOf = await readEffectsOfRows(redis, prefix, workflow, [...rows.keys()])
  for (const [row, all] of rows) {
    const effects = effectsOf.get(row) ?? []
    const expected = expectedOf(row, all)
    result.runsExpected += expected.length
    const seen = new Set<string>()
    for (const effect of effects) {
      const id = `${effect.lsn}:${effect.step}`
      if (seen.has(id)) result.duplicatedEffects++
      seen.add(id)
    }
    result.runsCompleted += effects.filter((effect) => effect.step === steps - 1).length
    result.lateRuns += effects.filter((effect) => effect.late && effect.step === 0).length
    for (const message of expected) {
      for (let step = 0; step < steps; step++) {
        if (!seen.has(`${message.lsn}:${step}`)) {
          result.lost++
          break
        }
      }
    }
    let last: Effect | undefined
    for (const effect of effects.filter((e) => !e.late)) {
      if (last && (effect.lsn < last.lsn || (effect.lsn === last.lsn && effect.step < last.step))) result.orderViolations++
      last = effect
    }
  }
  return result
}

/** A fault-report line from a proof's figures: its counts, and the scenario's own figure in words. */
export function proofLine (scenario: string, f: Figures, acknowledged: number, figure: string): ScenarioLine {
  return {
    scenario,
    sent: f.changes,
    acknowledged,
    runsCompleted: f.runsCompleted,
    lost: f.lost,
    duplicatedEffects: f.duplicatedEffects,
    orderViolations: f.orderViolations,
    figure,
  }
}

/** Changes of a simulation that were acknowledged (each counted once). */
export const acknowledged = (messages: readonly SimulatedMessage[]): number => messages.filter((m) => m.acked).length
