import t from 'tap'
import { reportScenario } from '../helpers/fault-report.ts'
import { acknowledged, completedRuns, figures, proofLine, spawnWorker, stopWorker } from '../helpers/proof.ts'
import { liveProgress, percentile, simulateSequin } from '../../src/simulate/sequin.ts'
import { REDIS_URL, waitFor } from '../helpers/service.ts'
import { suiteBoardSecret, suiteSecret } from '../helpers/suite-secrets.ts'
import { acceptedTotal, CREDENTIAL_STATUSES, exerciseCredentials, ownPrefix, startWebProcess } from '../helpers/web-processes.ts'

// Two web replicas behind a (simulated) load balancer and two workers; one web is SIGKILLed
// mid-traffic. Sequin's requests to it fail (reset, refused) and are retried on the other.
const TOKEN = suiteSecret('web-sigkill webhook token', 'cf-fault-webhook-token-SigKill-7Yv93Nq')
const BOARD_PASSWORD = suiteBoardSecret('web-sigkill board password', 'operator', 'cf-fault-board-pw-SigKill-Lq4Z')
const METRICS_TOKEN = suiteSecret('web-sigkill metrics token', 'cf-fault-metrics-token-SigKill-p2Rw')
const credentials = {
  token: TOKEN,
  wrongToken: suiteSecret('web-sigkill wrong webhook token', 'cf-fault-wrong-webhook-token-SigKill-X0'),
  username: 'operator',
  password: BOARD_PASSWORD,
  wrongPassword: suiteBoardSecret('web-sigkill wrong board password', 'operator', 'cf-fault-wrong-board-pw-SigKill-X1'),
  metricsToken: METRICS_TOKEN,
}

t.test('a web process SIGKILLed under load: requests retried on the other, nothing lost, nothing twice, in order', async (t) => {
  const { prefix, redis } = ownPrefix(t, REDIS_URL)
  const env = { REDIS_URL, REDIS_PREFIX: prefix, SEQUIN_WEBHOOK_TOKENS: TOKEN, BOARD_USERNAME: 'operator', BOARD_PASSWORD, METRICS_TOKEN }
  const a = await startWebProcess(t, 'web-killed', env)
  const b = await startWebProcess(t, 'web-surviving', env)
  // Operators at work on both: every credential travels, right and wrong, for the suite's secret scan.
  for (const web of [a, b]) t.same(await exerciseCredentials(web.base, credentials), CREDENTIAL_STATUSES, 'the credentials open what they should')
  const workerEnv = { REDIS_URL, REDIS_PREFIX: prefix, PROOF_MAX_LATENCY_MS: '10' }
  const workers = [spawnWorker(workerEnv), spawnWorker(workerEnv)]
  t.teardown(() => Promise.all(workers.map((w) => stopWorker(w, 'SIGKILL'))))

  const rows = 80
  const perRow = 8
  const firstRow = 20_000
  const live = liveProgress()
  const simulation = simulateSequin({
    url: [a.url, b.url],
    token: TOKEN,
    table: 'accounts',
    rows,
    changesPerRow: perRow,
    firstRow,
    batchSize: 5,
    concurrency: 8,
    immediateRetryMs: 25,
    live,
    timeoutMs: 90_000,
  })
  // Kill it once traffic flows, while it has requests in flight.
  await waitFor(() => live.acked >= 200 && live.inFlight[0]! > 0, 30_000, 'traffic on both webs')
  const inFlightAtKill = live.inFlight[0]!
  const requestsBeforeKill = live.requests
  a.web.child.kill('SIGKILL')
  const exit = await a.web.exited
  const sim = await simulation

  const allRows = Array.from({ length: rows }, (_, i) => firstRow + i)
  await waitFor(async () => await completedRuns(redis, prefix, 'proof-ordered', allRows) === rows * perRow, 60_000, 'every run')
  await new Promise((resolve) => setTimeout(resolve, 300)) // a doubled effect would show up here
  const f = await figures(redis, prefix, 'proof-ordered', sim.messages)
  const latencies = [...sim.ackLatencies.values()].flat()
  const p99 = Math.round(percentile(latencies, 99))
  const duplicatesSeen = acceptedTotal(a.web, 'duplicates') + acceptedTotal(b.web, 'duplicates')
  const badAnswers = Object.keys(sim.statuses).filter((status) => !['200', '503', 'connection error'].includes(status))

  t.comment(`statuses ${JSON.stringify(sim.statuses)}; by URL ${sim.requestsByUrl.join('/')} requests, ${sim.failedByUrl.join('/')} failed`)
  reportScenario(t, proofLine('a web process SIGKILLed under load (two webs behind a load balancer)', f, acknowledged(sim.messages),
    `killed after ${requestsBeforeKill} requests with ${inFlightAtKill} in flight; ${sim.failedByUrl[0]} requests to it failed, ` +
    `${sim.immediateRetries} retried at once on the other, ${sim.redeliveries} redeliveries, ${duplicatesSeen} changes recognised as duplicates; p99 ack ${p99} ms`))

  t.equal(exit.signal, 'SIGKILL', 'the web process was killed')
  t.ok(inFlightAtKill > 0, `it had requests in flight (${inFlightAtKill})`)
  t.ok(sim.failedByUrl[0]! > 0, 'requests to it failed')
  t.equal(sim.failedByUrl[1], 0, 'no request to the surviving web failed')
  t.same(badAnswers, [], 'every answer was a 2xx, a 503 or a connection error of the killed process')
  t.equal(sim.unavailableWithoutRetryAfter, 0, 'every 503 carried Retry-After')
  t.equal(acknowledged(sim.messages), rows * perRow, 'every change was acknowledged in the end')
  t.match(f, { changes: rows * perRow, runsExpected: rows * perRow, runsCompleted: rows * perRow, lost: 0, duplicatedEffects: 0, orderViolations: 0 },
    'every change processed, each effect once, in row order')
  t.notMatch(b.web.output(), '"msg":"request failed"', 'no request failed inside the surviving web')
})
