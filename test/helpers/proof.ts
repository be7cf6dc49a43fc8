import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import type { Redis } from 'ioredis'
import { projectRoot } from '../../src/config.ts'
import type { SimulatedMessage } from './sequin-simulator.ts'
import { startService, type Service } from './service.ts'

export const proofJobsDir = join(projectRoot, 'test/fixtures/proof-jobs')

/** The webhook in this process, listening on a free loopback port, with the proof workflows. */
export async function startProofWeb (): Promise<{ service: Service, url: string }> {
  const service = await startService({ workers: false, env: { JOBS_DIR: proofJobsDir } })
  await service.web.app.listen({ host: '127.0.0.1', port: 0 })
  const url = `http://127.0.0.1:${(service.web.app.server.address() as AddressInfo).port}/webhooks/sequin`
  return { service, url }
}

/** A `npm run worker` process of the project (run directly, so that SIGKILL reaches it). */
export function spawnWorker (env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(projectRoot, 'src/main/worker.ts')], {
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
      LOG_LEVEL: 'error',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
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

export async function readEffects (redis: Redis, prefix: string, workflow: string, row: number): Promise<Effect[]> {
  const entries = await redis.lrange(`{${prefix}}:proof:effects:${workflow}:${row}`, 0, -1)
  return entries.map((entry) => {
    const [lsn, step, late] = entry.split(':')
    return { lsn: Number(lsn), step: STEPS.indexOf(step!), late: late === 'late' }
  })
}

/**
 * Lost: a change whose two effects are not both there. Duplicated: an effect applied twice.
 * Order violation: within a row, an effect (not of a late run) that comes before an effect of
 * an earlier change or step it should have followed.
 */
export async function figures (redis: Redis, prefix: string, workflow: string, messages: SimulatedMessage[], expectedOf: (row: number, all: SimulatedMessage[]) => SimulatedMessage[] = (_row, all) => all): Promise<Figures> {
  const rows = new Map<number, SimulatedMessage[]>()
  for (const message of messages) rows.set(message.row, [...(rows.get(message.row) ?? []), message])
  const result: Figures = { changes: messages.length, runsExpected: 0, runsCompleted: 0, lost: 0, duplicatedEffects: 0, orderViolations: 0, lateRuns: 0 }
  for (const [row, all] of rows) {
    const effects = await readEffects(redis, prefix, workflow, row)
    const expected = expectedOf(row, all)
    result.runsExpected += expected.length
    const seen = new Set<string>()
    for (const effect of effects) {
      const id = `${effect.lsn}:${effect.step}`
      if (seen.has(id)) result.duplicatedEffects++
      seen.add(id)
    }
    result.runsCompleted += effects.filter((effect) => effect.step === 1).length
    result.lateRuns += effects.filter((effect) => effect.late && effect.step === 0).length
    for (const message of expected) {
      if (!seen.has(`${message.lsn}:0`) || !seen.has(`${message.lsn}:1`)) result.lost++
    }
    let last: Effect | undefined
    for (const effect of effects.filter((e) => !e.late)) {
      if (last && (effect.lsn < last.lsn || (effect.lsn === last.lsn && effect.step < last.step))) result.orderViolations++
      last = effect
    }
  }
  return result
}
