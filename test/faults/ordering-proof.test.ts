import t from 'tap'
import { blockedRows, discardRun, retryStep, workflowQueues } from '../../src/runs/rows.ts'
import { Keyspace } from '../../src/keys.ts'
import { withScripts } from '../../src/redis/scripts.ts'
import { reportScenario } from '../helpers/fault-report.ts'
import { acknowledged, completedRuns as completedOf, figures, proofLine, spawnWorker, startProofWeb, stopWorker } from '../helpers/proof.ts'
import { simulateSequin } from '../../src/simulate/sequin.ts'
import { REDIS_URL, TOKEN, waitFor } from '../helpers/service.ts'
import { suiteSecret } from '../helpers/suite-secrets.ts'

// The webhook in this process; steps in two worker processes at concurrency 8 each.
const { service, url } = await startProofWeb()
const prefix = service.config.REDIS_PREFIX
const keys = new Keyspace(prefix)
const redis = service.redis
t.teardown(() => service.close())
suiteSecret('the in-process test webhook token', TOKEN)

const workerEnv = (extra: Record<string, string> = {}) => ({ REDIS_URL, REDIS_PREFIX: prefix, ...extra })
const deduplicated = async () => Number(await redis.getset(`{${prefix}}:proof:deduplicated`, '0') ?? 0)
const completedRuns = (workflow: string, rows: number[]) => completedOf(redis, prefix, workflow, rows)
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i)

t.test('transient step failures with backoff, lost acks and redeliveries: nothing lost, doubled or reordered', async (t) => {
  const workers = [0, 1].map(() => spawnWorker(workerEnv({ PROOF_FAIL_RATE: '0.2', PROOF_MAX_LATENCY_MS: '15' })))
  t.teardown(() => Promise.all(workers.map((w) => stopWorker(w))))
  const sim = await simulateSequin({ url, token: TOKEN, table: 'accounts', rows: 40, changesPerRow: 5, firstRow: 1_000, batchSize: 5, lostAckRate: 0.15 })
  await waitFor(async () => await completedRuns('proof-ordered', range(1_000, 40)) === 200, 60_000, 'every run')
  const f = await figures(redis, prefix, 'proof-ordered', sim.messages)
  reportScenario(t, proofLine('transient step failures (20 %), lost acks (15 %), redeliveries', f, acknowledged(sim.messages),
    `${sim.requests} requests, ${sim.lostAcks} acks lost, ${sim.redeliveries} redeliveries, ${await deduplicated()} effects refused by the provider's idempotency check`))
  t.match(f, { changes: 200, runsExpected: 200, runsCompleted: 200, lost: 0, duplicatedEffects: 0, orderViolations: 0 })
  t.ok(sim.lostAcks > 0, 'some acks were lost, so changes were redelivered')
})

t.test('worker processes SIGKILLed mid-step three times: nothing lost, doubled or reordered', async (t) => {
  const env = workerEnv({ PROOF_MAX_LATENCY_MS: '40' })
  const workers = [spawnWorker(env), spawnWorker(env)]
  t.teardown(() => Promise.all(workers.map((w) => stopWorker(w))))
  const executions = async () => Number(await redis.get(`{${prefix}}:proof:executions`) ?? 0)
  const before = await executions()
  const simulation = simulateSequin({ url, token: TOKEN, table: 'accounts', rows: 40, changesPerRow: 8, firstRow: 2_000 })
  const rows = range(2_000, 40)
  const [queue] = workflowQueues(['proof-ordered'], redis, keys)
  t.teardown(() => queue!.close())
  let kills = 0
  let activeAtKills = 0
  while (kills < 3) {
    // Kill the older process once it is busy, with steps active, then start a replacement.
    await waitFor(async () => await executions() >= before + 80 * (kills + 1), 30_000, 'steps to be running')
    activeAtKills += (await queue!.getJobCounts('active')).active ?? 0
    await stopWorker(workers.shift()!, 'SIGKILL')
    kills++
    workers.push(spawnWorker(env))
  }
  const sim = await simulation
  await waitFor(async () => await completedRuns('proof-ordered', rows) === 320, 60_000, 'every run after the kills')
  const f = await figures(redis, prefix, 'proof-ordered', sim.messages)
  const reExecuted = await executions() - before - 640
  reportScenario(t, proofLine('worker processes SIGKILLed mid-step (3 kills)', f, acknowledged(sim.messages),
    `${activeAtKills} steps active at the kills, ${reExecuted} steps executed again, ${await deduplicated()} effects refused by the provider's idempotency check`))
  t.match(f, { changes: 320, runsExpected: 320, runsCompleted: 320, lost: 0, duplicatedEffects: 0, orderViolations: 0 })
  t.ok(activeAtKills > 0, 'steps were active when the workers were killed')
})

t.test('a permanently failing step blocks only its row; operator retry, then discard', async (t) => {
  const workers = [0, 1].map(() => spawnWorker(workerEnv({ PROOF_MAX_LATENCY_MS: '5' })))
  t.teardown(() => Promise.all(workers.map((w) => stopWorker(w))))
  const poisoned = [3_003, 3_007]
  await redis.sadd(`{${prefix}}:proof:poison`, ...poisoned.map(String))
  const sim = await simulateSequin({ url, token: TOKEN, table: 'accounts', rows: 20, changesPerRow: 4, firstRow: 3_000 })
  const healthy = range(3_000, 20).filter((row) => !poisoned.includes(row))
  await waitFor(async () => await completedRuns('proof-ordered', healthy) === 18 * 4, 30_000, 'the unrelated rows')
  const queues = workflowQueues(['proof-ordered'], redis, keys)
  t.teardown(() => Promise.all(queues.map((q) => q.close())))
  await waitFor(async () => (await blockedRows(redis, keys, queues)).length === 2, 10_000, 'both poisoned rows blocked')
  const blocked = await blockedRows(redis, keys, queues)
  t.same(blocked.map((b) => b.key[0]).sort(), poisoned.map(String), 'exactly the poisoned rows are blocked')
  t.ok(blocked.every((b) => b.waiting === 3 && /poisoned/.test(b.error)), 'each with its 3 later runs waiting and its error')
  t.equal(await completedRuns('proof-ordered', poisoned), 0, 'nothing of the blocked rows ran past the failure')

  // The operator fixes the cause and retries row 3003's step; gives row 3007's run up.
  await redis.srem(`{${prefix}}:proof:poison`, ...poisoned.map(String))
  const byRow = new Map(blocked.map((b) => [Number(b.key[0]), b]))
  await retryStep(queues[0]!, byRow.get(3_003)!.jobId)
  await discardRun(withScripts(redis), keys, queues[0]!, byRow.get(3_007)!.jobId, 60_000)
  await waitFor(async () => await completedRuns('proof-ordered', [3_003]) === 4 && await completedRuns('proof-ordered', [3_007]) === 3, 20_000, 'the rows after retry and discard')
  const discarded = sim.messages.filter((m) => m.row === 3_007 && m.seq === 0)
  const f = await figures(redis, prefix, 'proof-ordered', sim.messages, (row, all) => row === 3_007 ? all.filter((m) => !discarded.includes(m)) : all)
  reportScenario(t, proofLine('a step failing for good blocks its row; retried, discarded', f, acknowledged(sim.messages),
    `${blocked.length} rows blocked (each with 3 runs waiting), 1 retried, 1 run discarded, ${18 * 4} runs of other rows unaffected`))
  t.match(f, { changes: 80, runsExpected: 79, runsCompleted: 79, lost: 0, duplicatedEffects: 0, orderViolations: 0 })
  t.same(await blockedRows(redis, keys, queues), [])
})

t.test('late changes: run and marked by default, skipped where only the newest state matters', async (t) => {
  const workers = [0, 1].map(() => spawnWorker(workerEnv({ PROOF_MAX_LATENCY_MS: '5' })))
  t.teardown(() => Promise.all(workers.map((w) => stopWorker(w))))
  // Requests that fail before reaching us put messages in backoff, where newer ones overtake them.
  const options = { url, token: TOKEN, rows: 30, changesPerRow: 6, dropRate: 0.35, batchSize: 10 }
  const [ordered, latest] = await Promise.all([
    simulateSequin({ ...options, table: 'accounts', firstRow: 4_000 }),
    simulateSequin({ ...options, table: 'accounts_state', firstRow: 5_000 }),
  ])
  await waitFor(async () => await completedRuns('proof-ordered', range(4_000, 30)) === 180, 30_000, 'every ordered run')
  const f = await figures(redis, prefix, 'proof-ordered', ordered.messages)
  reportScenario(t, proofLine('late changes (newer overtakes older in backoff), run marked late', f, acknowledged(ordered.messages),
    `${ordered.overtakes} overtakes, ${f.lateRuns} runs marked late`))
  t.match(f, { changes: 180, runsCompleted: 180, lost: 0, duplicatedEffects: 0, orderViolations: 0 })
  t.ok(f.lateRuns > 0, 'some changes arrived late and ran marked as late')

  // late: 'skip' keeps only changes newer than the row's newest: every row ends on its last change.
  const newest = (row: number, all: typeof latest.messages) => all.filter((m) => m.seq === 5)
  await waitFor(async () => (await figures(redis, prefix, 'proof-latest', latest.messages, newest)).lost === 0, 30_000, 'each row synced to its newest change')
  await new Promise((resolve) => setTimeout(resolve, 300))
  const s = await figures(redis, prefix, 'proof-latest', latest.messages, newest)
  reportScenario(t, proofLine("late changes with late: 'skip'", s, acknowledged(latest.messages),
    `${latest.overtakes} overtakes, ${s.changes - s.runsCompleted} late changes skipped, every row ends on its newest change (lost counts rows that did not)`))
  t.match(s, { lost: 0, duplicatedEffects: 0, orderViolations: 0, lateRuns: 0 })
  t.ok(s.runsCompleted < s.changes, 'late changes were skipped')
})

t.test('the same workload with ordering off does reorder: the guarantee is not an accident', async (t) => {
  const workers = [0, 1].map(() => spawnWorker(workerEnv({ PROOF_MAX_LATENCY_MS: '40' })))
  t.teardown(() => Promise.all(workers.map((w) => stopWorker(w))))
  const sim = await simulateSequin({ url, token: TOKEN, table: 'accounts_unordered', rows: 40, changesPerRow: 8, firstRow: 6_000 })
  await waitFor(async () => await completedRuns('proof-unordered', range(6_000, 40)) === 320, 60_000, 'every unordered run')
  const f = await figures(redis, prefix, 'proof-unordered', sim.messages)
  reportScenario(t, proofLine('negative control: the same workload with ordering off', f, acknowledged(sim.messages),
    `${f.orderViolations} order violations without per-row ordering: the proofs above can fail`))
  t.match(f, { changes: 320, runsCompleted: 320, lost: 0, duplicatedEffects: 0 })
  t.ok(f.orderViolations > 0, `ordering off shows violations (${f.orderViolations})`)
})
