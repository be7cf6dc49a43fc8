import t from 'tap'
import { changeId, runId, stepJobId } from '../../src/ingest/identity.ts'
import type { SequinMetadata } from '../../src/sequin/message.ts'
import { reportScenario } from '../helpers/fault-report.ts'
import { acknowledged, completedRuns, figures, proofJobsDir, proofLine, spawnWorker, startProofWeb, stopWorker } from '../helpers/proof.ts'
import { spawnRole, within, WORKER_ENV } from '../helpers/processes.ts'
import { simulateSequin } from '../../src/simulate/sequin.ts'
import { REDIS_URL, TOKEN, waitFor } from '../helpers/service.ts'
import { suiteSecret } from '../helpers/suite-secrets.ts'

// A worker frozen (SIGSTOP: a long GC pause, a VM stall, a container throttled to nothing) past its
// BullMQ lock while it runs steps, then thawed (SIGCONT). Another worker must take the steps over,
// and the frozen one's late completions must be refused: effects once, in order, nothing lost.
const { service, url } = await startProofWeb()
const prefix = service.config.REDIS_PREFIX
const redis = service.redis
t.teardown(() => service.close())
suiteSecret('the in-process test webhook token', TOKEN)

const LOCK_MS = 1_000
const env = {
  ...WORKER_ENV,
  REDIS_URL,
  REDIS_PREFIX: prefix,
  JOBS_DIR: proofJobsDir,
  LOCK_DURATION: `${LOCK_MS}ms`,
  STALLED_INTERVAL: '300ms',
  PROOF_MAX_LATENCY_MS: '250',
}
const counter = async (name: string) => Number(await redis.get(`{${prefix}}:proof:${name}`) ?? 0)
const LATE_REFUSAL = /^(Missing lock for job|Lock mismatch for job|Job .* is not in the active state).*moveToFinished/

t.test('a worker SIGSTOPped past its lock, then SIGCONTed: steps taken over, late completions refused, effects once', async (t) => {
  // The one to freeze logs at debug, so that its own log says which steps it held.
  const frozen = spawnRole('worker', { ...env, LOG_LEVEL: 'debug' }, 'worker-frozen')
  const other = spawnWorker(env, 'worker-taking-over')
  t.teardown(async () => {
    frozen.child.kill('SIGCONT')
    await frozen.stop('SIGKILL')
    await stopWorker(other, 'SIGKILL')
  })
  const rows = 30
  const perRow = 6
  const firstRow = 11_000
  const simulation = simulateSequin({ url, token: TOKEN, table: 'accounts', rows, changesPerRow: perRow, firstRow, batchSize: 10, timeoutMs: 60_000 })

  const ids = (msg: string) => frozen.lines().filter((line) => line.msg === msg).map((line) => String(line.jobId))
  const holding = () => {
    const done = new Set(ids('step completed'))
    return [...new Set(ids('step started'))].filter((id) => !done.has(id))
  }
  await waitFor(() => ids('step started').length >= 16 && holding().length >= 3, 30_000, 'the worker to be running several steps')
  frozen.child.kill('SIGSTOP')
  const stoppedAt = Date.now()
  await new Promise((resolve) => setTimeout(resolve, 300)) // what it wrote before the stop reaches us
  const completed = async (id: string) => (await redis.zscore(`{${prefix}}:proof-ordered:completed`, id)) !== null
  // A step whose completion script ran just before the stop is completed, though its log line
  // (written once the script's answer is read) is not there yet: its lock has not expired, so
  // no other worker can have completed it this early.
  const held = (await Promise.all(holding().map(async (id) => (await completed(id)) ? undefined : id))).filter((id) => id !== undefined)
  const executionsAtStop = await counter('executions')

  // The other worker finds the expired locks and runs those steps to completion meanwhile.
  const allCompleted = async () => (await Promise.all(held.map(completed))).every(Boolean)
  await waitFor(allCompleted, 20_000, 'the held steps to be completed by the other worker')
  const frozenMs = Date.now() - stoppedAt
  const stalled = await Promise.all(held.map(async (id) => Number(await redis.hget(`{${prefix}}:proof-ordered:${id}`, 'stc') ?? 0)))
  const takenOver = held.filter((_id, i) => stalled[i]! >= 1).length

  frozen.child.kill('SIGCONT')
  const refusals = () => frozen.lines()
    .filter((line) => line.msg === 'worker error')
    .map((line) => String((line.err as { message?: string } | undefined)?.message ?? ''))
    .filter((message) => LATE_REFUSAL.test(message))
  const refusedIds = () => held.filter((id) => refusals().some((message) => message.includes(`job ${id}`) || message.includes(`Job ${id} `)))
  await waitFor(() => refusedIds().length === held.length, 10_000, 'every late completion of the thawed worker to be refused')
  const resumedCompletions = ids('step completed').filter((id) => held.includes(id)).length

  const sim = await within(simulation, 60_000, 'the simulation')
  const messages = sim.messages
  const allRows = Array.from({ length: rows }, (_, i) => firstRow + i)
  await waitFor(async () => await completedRuns(redis, prefix, 'proof-ordered', allRows) === rows * perRow, 60_000, 'every run')
  await new Promise((resolve) => setTimeout(resolve, 500)) // a late effect would show up here
  const f = await figures(redis, prefix, 'proof-ordered', messages)
  const executions = await counter('executions')
  const deduplicated = await counter('deduplicated')
  // Every step job of the scenario: completed exactly once in BullMQ's eyes.
  const jobIds = messages.flatMap((m) => {
    const run = runId(changeId((m.body as { metadata: SequinMetadata }).metadata), 'proof-ordered')
    return ['debit', 'credit'].map((step) => stepJobId(run, step))
  })
  const notCompleted = (await Promise.all(jobIds.map(completed))).filter((done) => !done).length
  // Beyond the steps its log showed running: any step it had taken but not begun is recovered too.
  const recovered = (await Promise.all(jobIds.map(async (id) => Number(await redis.hget(`{${prefix}}:proof-ordered:${id}`, 'stc') ?? 0) >= 1 ? id : '')))
    .filter(Boolean)
  const refusedAll = jobIds.filter((id) => refusals().some((message) => message.includes(`job ${id}`) || message.includes(`Job ${id} `)))

  t.comment(`held ${held.join(', ')}; executions ${executions} (at the stop ${executionsAtStop}); ` +
    `the thawed worker finished ${resumedCompletions} of them itself before BullMQ refused the completion`)
  reportScenario(t, proofLine('a worker SIGSTOPped past its lock, then SIGCONTed', f, acknowledged(messages),
    `frozen ${frozenMs} ms (lock ${LOCK_MS} ms) while running ${held.length} steps; ${recovered.length} steps taken over by the other worker, ` +
    `${refusedAll.length} late completions refused by BullMQ (lock lost), ${deduplicated} late effects refused by the provider's idempotency check, ` +
    `${executions - 2 * rows * perRow} steps executed twice`))

  t.ok(held.length > 0, `the worker held steps when frozen (${held.length})`)
  t.ok(frozenMs > LOCK_MS, 'it stayed frozen past its lock')
  t.equal(takenOver, held.length, 'every step it was running was recovered as stalled and completed by the other worker')
  t.equal(refusedIds().length, held.length, 'every late completion after the thaw was refused (lock lost)')
  t.same(refusedAll.filter((id) => !recovered.includes(id)), [], 'it was refused only steps that had been taken over')
  t.equal(notCompleted, 0, 'every step job of every run is completed')
  t.equal(frozen.child.exitCode, null, 'the thawed worker kept running')
  t.match(f, { changes: rows * perRow, runsExpected: rows * perRow, runsCompleted: rows * perRow, lost: 0, duplicatedEffects: 0, orderViolations: 0 },
    'every change processed, each effect once, in row order')
})
