import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import t from 'tap'
import { reportScenario } from '../helpers/fault-report.ts'
import { figures, spawnWorker, stopWorker } from '../helpers/proof.ts'
import { rssBytes } from '../helpers/processes.ts'
import { startRedisServer } from '../../scripts/lib/redis-server.ts'
import { percentile, simulateSequin, type SimulatedMessage, type SimulatorResult } from '../../src/simulate/sequin.ts'
import { waitFor } from '../helpers/service.ts'
import { suiteLog } from '../helpers/suite-logs.ts'
import { suiteBoardSecret, suiteSecret } from '../helpers/suite-secrets.ts'
import { CREDENTIAL_STATUSES, exerciseCredentials, startWebProcess, type WebProcess } from '../helpers/web-processes.ts'

// Sustained load from 16 concurrent senders with batches of 1, 100 and 1,000 messages of about
// 1 KiB, workers running; then a web process pushed past capacity, whose overload must be
// answered 503 + Retry-After, and whose backlog must drain with nothing lost.
//
// It runs against a redis-server of its own: it writes over a hundred thousand keys and keeps
// Redis busy, which other test files sharing the suite's Redis should not feel.
const OLD_TOKEN = suiteSecret('load webhook token (rotating out)', 'cf-fault-webhook-token-LoadOld-5tGd8w')
const NEW_TOKEN = suiteSecret('load webhook token (rotating in)', 'cf-fault-webhook-token-LoadNew-Kc71Xz')
const BOARD_PASSWORD = suiteBoardSecret('load board password', 'admin', 'cf-fault-board-pw-Load-Rm9V')
const METRICS_TOKEN = suiteSecret('load metrics token', 'cf-fault-metrics-token-Load-Jw3s')
const credentials = {
  token: OLD_TOKEN,
  wrongToken: suiteSecret('load wrong webhook token', 'cf-fault-wrong-webhook-token-Load-X2'),
  username: 'admin',
  password: BOARD_PASSWORD,
  wrongPassword: suiteBoardSecret('load wrong board password', 'admin', 'cf-fault-wrong-board-pw-Load-X3'),
  metricsToken: METRICS_TOKEN,
}

const SENDERS = 16
const MESSAGE_BYTES = 1024
const MiB = 1024 * 1024
/** What a web process may hold with 16 requests of 1,000 messages (1 MiB each) in flight. */
const RSS_BOUND = 900 * MiB
const HEAP_BOUND = 600 * MiB

// About 80 s on 2 shared cores; the headroom is for a busier machine (every wait is bounded).
t.setTimeout(180_000)
const redisServer = await startRedisServer([], { log: suiteLog('redis-server') })
const prefix = 'load'
const redis = new Redis(redisServer.url)
redis.on('error', () => {})
const env = {
  REDIS_URL: redisServer.url,
  REDIS_PREFIX: prefix,
  SEQUIN_WEBHOOK_TOKENS: `${OLD_TOKEN},${NEW_TOKEN}`,
  BOARD_PASSWORD,
  METRICS_TOKEN,
}

/** Samples a web process's resident memory (every 100 ms) and its V8 heap (its own /metrics, every 500 ms). */
function sampleMemory (web: WebProcess) {
  const peak = { rss: rssBytes(web.web.child.pid!), heap: 0 }
  const rss = setInterval(() => { peak.rss = Math.max(peak.rss, rssBytes(web.web.child.pid!)) }, 100)
  const heap = setInterval(() => {
    fetch(`${web.base}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` }, signal: AbortSignal.timeout(2_000) })
      .then(async (response) => {
        const used = /^changeflow_nodejs_heap_size_used_bytes (\d+)/m.exec(await response.text())?.[1]
        if (used) peak.heap = Math.max(peak.heap, Number(used))
      })
      .catch(() => {})
  }, 500)
  return { peak, stop: () => { clearInterval(rss); clearInterval(heap) } }
}

const mib = (bytes: number) => `${Math.round(bytes / MiB)} MiB`
const ms = (value: number) => `${Math.round(value)} ms`
const answersOtherThan = (sim: SimulatorResult, allowed: string[]) =>
  Object.fromEntries(Object.entries(sim.statuses).filter(([status]) => !allowed.includes(status)))

const messages: SimulatedMessage[] = []
const queue = new Queue('proof-load', { connection: redis, prefix: `{${prefix}}` })
const workers = [0, 1].map(() => spawnWorker({ REDIS_URL: redisServer.url, REDIS_PREFIX: prefix, WORKER_CONCURRENCY: '16' }))
t.teardown(async () => {
  await Promise.all(workers.map((w) => stopWorker(w, 'SIGKILL')))
  await queue.close()
  redis.disconnect()
  await redisServer.stop()
})
const backlog = async () => {
  const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized')
  return Object.values(counts).reduce((sum, n) => sum + n, 0)
}
const lines: string[] = []

t.test('sustained load: 16 senders, batches of 1, 100 and 1,000 messages of 1 KiB, workers running', async (t) => {
  const web = await startWebProcess(t, 'web-load', env)
  t.same(await exerciseCredentials(web.base, credentials), CREDENTIAL_STATUSES, 'the credentials open what they should')
  const phases = [{ size: 1, seconds: 4 }, { size: 100, seconds: 3 }, { size: 1_000, seconds: 3 }]
  let firstRow = 1
  for (const { size, seconds } of phases) {
    const memory = sampleMemory(web)
    const sim = await simulateSequin({
      url: web.url,
      token: NEW_TOKEN,
      table: 'load_events',
      rows: 10_000_000,
      changesPerRow: 1,
      firstRow,
      batchSize: size,
      concurrency: SENDERS,
      messageBytes: MESSAGE_BYTES,
      sendForMs: seconds * 1_000,
      timeoutMs: 90_000,
    }).finally(memory.stop)
    firstRow += 10_000_000
    messages.push(...sim.messages)
    const latencies = sim.ackLatencies.get(size) ?? []
    const line = `batch ${size}: ${sim.requests} requests, ${sim.messages.length} changes in ${(sim.elapsedMs / 1000).toFixed(1)} s ` +
      `(${Math.round(sim.messages.length / (sim.elapsedMs / 1000))}/s); ack p50 ${ms(percentile(latencies, 50))}, p99 ${ms(percentile(latencies, 99))}; ` +
      `peak RSS ${mib(memory.peak.rss)}, heap ${mib(memory.peak.heap)}; answers ${JSON.stringify(sim.statuses)}`
    lines.push(`batch ${size}: p99 ack ${ms(percentile(latencies, 99))}`)
    t.comment(line)
    t.same(answersOtherThan(sim, ['200', '503']), {}, `batch ${size}: every answer a 2xx or a 503`)
    t.equal(sim.unavailableWithoutRetryAfter, 0, `batch ${size}: every 503 carried Retry-After`)
    t.ok(memory.peak.rss > 0 && memory.peak.rss < RSS_BOUND, `batch ${size}: the web process stayed under ${mib(RSS_BOUND)} resident (${mib(memory.peak.rss)})`)
    t.ok(memory.peak.heap > 0 && memory.peak.heap < HEAP_BOUND, `batch ${size}: its heap stayed under ${mib(HEAP_BOUND)} (${mib(memory.peak.heap)})`)
    t.ok(sim.messages.length >= size * SENDERS, `batch ${size}: every sender delivered`)
  }
  t.notMatch(web.web.output(), '"msg":"request failed"', 'no request failed inside the service')
})

t.test('past capacity: overload answered 503 + Retry-After, then the backlog drains with nothing lost', async (t) => {
  // The same service with tight limits: a loop delay of 20 ms and Redis given 50 ms a batch.
  const web = await startWebProcess(t, 'web-overloaded', { ...env, MAX_EVENT_LOOP_DELAY: '20ms', ENQUEUE_TIMEOUT: '50ms' })
  const memory = sampleMemory(web)
  const sim = await simulateSequin({
    url: web.url,
    token: OLD_TOKEN,
    table: 'load_events',
    rows: 10_000_000,
    changesPerRow: 1,
    firstRow: 90_000_001,
    batchSize: 1_000,
    concurrency: SENDERS,
    messageBytes: MESSAGE_BYTES,
    sendForMs: 3_000,
    timeoutMs: 90_000,
  }).finally(memory.stop)
  messages.push(...sim.messages)
  const unavailable = sim.statuses['503'] ?? 0
  const backlogAtEnd = await backlog()
  const latencies = sim.ackLatencies.get(1_000) ?? []
  t.comment(`overloaded: ${sim.requests} requests, ${sim.messages.length} changes, answers ${JSON.stringify(sim.statuses)}, ` +
    `${sim.redeliveries} redeliveries; ${backlogAtEnd} steps waiting when the last change was acknowledged; peak RSS ${mib(memory.peak.rss)}`)

  const drainStart = Date.now()
  await waitFor(async () => await backlog() === 0, 120_000, 'the backlog to drain')
  const drainMs = Date.now() - drainStart
  const f = await figures(redis, prefix, 'proof-load', messages, undefined, 1)
  const executions = Number(await redis.get(`{${prefix}}:proof:executions`) ?? 0)
  const deduplicated = Number(await redis.get(`{${prefix}}:proof:deduplicated`) ?? 0)

  reportScenario(t, {
    scenario: 'sustained load (16 senders; batches of 1, 100, 1,000 × 1 KiB), then past capacity',
    sent: f.changes,
    acknowledged: messages.filter((m) => m.acked).length,
    runsCompleted: f.runsCompleted,
    lost: f.lost,
    duplicatedEffects: f.duplicatedEffects,
    orderViolations: f.orderViolations,
    figure: `${lines.join(', ')}; overloaded: ${unavailable} of ${sim.requests} requests answered 503 + Retry-After, ` +
      `p99 ack ${ms(percentile(latencies, 99))}, backlog of ${backlogAtEnd} steps drained in ${(drainMs / 1000).toFixed(1)} s; ` +
      `${executions - f.changes} steps executed twice, ${deduplicated} effects refused by the provider`,
  })
  t.ok(unavailable > 0, `overload was answered 503 (${unavailable} times)`)
  t.same(answersOtherThan(sim, ['200', '503']), {}, 'every answer a 2xx or a 503')
  t.equal(sim.unavailableWithoutRetryAfter, 0, 'every 503 carried Retry-After')
  t.ok(memory.peak.rss < RSS_BOUND, `the overloaded web stayed under ${mib(RSS_BOUND)} resident (${mib(memory.peak.rss)})`)
  t.equal(messages.filter((m) => !m.acked).length, 0, 'every change was acknowledged in the end')
  t.match(f, { runsExpected: f.changes, runsCompleted: f.changes, lost: 0, duplicatedEffects: 0, orderViolations: 0 },
    'every acknowledged change ran once, none lost')
  t.notMatch(web.web.output(), '"msg":"request failed"', 'no request failed inside the service')
})
