import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { recordAnswers, type Answer } from '../helpers/answers.ts'
import { reportScenario } from '../helpers/fault-report.ts'
import { spawnRole, WORKER_ENV } from '../helpers/processes.ts'
import { figures, proofJobsDir } from '../helpers/proof.ts'
import { startRedisServer } from '../../scripts/lib/redis-server.ts'
import { liveProgress, simulateSequin, type SimulatedMessage } from '../../src/simulate/sequin.ts'
import { startService, TOKEN, waitFor } from '../helpers/service.ts'
import { logSink, suiteLog } from '../helpers/suite-logs.ts'
import { startTcpProxy, type TcpProxy, type Verdict } from '../helpers/tcp-proxy.ts'

const ENQUEUE_TIMEOUT_MS = 1_000
const MARGIN_MS = 750
const PARTITION_MS = 1_500
/**
 * How a cut meets the web's connections: the next batch's script never reaches Redis; reaches
 * it and runs, its answer lost; arrives cut in half; every connection reset at once; or every
 * connection reset and Redis unreachable for longer than ENQUEUE_TIMEOUT. Each CUTS_EACH times.
 */
const KINDS = ['request lost', 'reply lost', 'truncated', 'all reset', 'partition'] as const
type Kind = typeof KINDS[number]
const CUTS_EACH = 3
const TRAFFIC = { table: 'accounts', rows: 150, changesPerRow: 6, batchSize: 5, concurrency: 4, timeoutMs: 60_000 }

interface Cut { kind: Kind, at: number, until: number }

/** ioredis sends a defined script as EVALSHA (EVAL once after NOSCRIPT); RESP spells the name out. */
const isScript = (chunk: Buffer) => chunk.includes('evalsha') || chunk.includes('$4\r\neval\r\n')

/** Cuts the proxied connections as told, and remembers each cut. */
function cutter (proxy: TcpProxy) {
  const cuts: Cut[] = []
  let armed: Kind | null = null
  let replyToDrop = false
  const cut = (kind: Kind, until = Date.now()) => cuts.push({ kind, at: Date.now(), until })
  proxy.inspect = (chunk, direction): Verdict => {
    if (armed === null) return 'pass'
    if (direction === 'up' && isScript(chunk)) {
      if (armed === 'reply lost') {
        replyToDrop = true // Redis gets the script and runs it; its answer never comes back
        return 'pass'
      }
      cut(armed)
      const verdict = armed === 'request lost' ? 'cut' : 'half-then-cut'
      armed = null
      return verdict
    }
    if (direction === 'down' && replyToDrop) {
      cut('reply lost')
      replyToDrop = false
      armed = null
      return 'cut'
    }
    return 'pass'
  }
  return {
    cuts,
    /** Cuts once; resolves when it happened (or after 5 s without a script to cut). */
    async next (kind: Kind) {
      const before = cuts.length
      if (kind === 'all reset' || kind === 'partition') {
        proxy.refusing = kind === 'partition'
        if (proxy.cutAll() > 0) cut(kind, kind === 'partition' ? Date.now() + PARTITION_MS : Date.now())
        if (proxy.refusing) await sleep(PARTITION_MS)
        proxy.refusing = false
        return
      }
      armed = kind
      await waitFor(() => cuts.length > before, 5_000, `a script to cut (${kind})`).catch(() => {})
      armed = null
      replyToDrop = false
    },
  }
}

/** The sum of a Prometheus counter's series whose labels match. */
const counter = (text: string, name: string, labels: RegExp) =>
  [...text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\d+)`, 'gm'))]
    .filter((match) => labels.test(match[1]!)).reduce((sum, match) => sum + Number(match[2]), 0)

t.test('connections between the web and Redis cut mid-enqueue: no 2xx without the batch, redelivery completes it once', async (t) => {
  const redis = await startRedisServer([], { log: suiteLog('redis-server') })
  const proxy = await startTcpProxy(redis.port)
  const env = { JOBS_DIR: proofJobsDir, ENQUEUE_TIMEOUT: `${ENQUEUE_TIMEOUT_MS}ms`, REDIS_CHECK_INTERVAL: '1s' }
  const redisUrl = `redis://127.0.0.1:${proxy.port}`
  const service = await startService({ redisUrl, workers: false, env, logs: logSink(suiteLog('web-in-process')) })
  const answers = recordAnswers(service.web.app.server)
  await service.web.app.listen({ host: '127.0.0.1', port: 0 })
  const url = `http://127.0.0.1:${(service.web.app.server.address() as AddressInfo).port}/webhooks/sequin`
  const prefix = service.config.REDIS_PREFIX
  // Workers reach Redis directly: only the web side's connections go through the proxy.
  const workerEnv = { ...WORKER_ENV, JOBS_DIR: proofJobsDir, REDIS_URL: redis.url, REDIS_PREFIX: prefix }
  const workers = [0, 1].map(() => spawnRole('worker', { ...workerEnv, PROOF_MAX_LATENCY_MS: '5' }))
  t.teardown(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')))
    await service.close()
    await proxy.close()
    await redis.stop()
  })

  const { cuts, next } = cutter(proxy)
  const plan = KINDS.flatMap((kind) => Array.from({ length: CUTS_EACH }, () => kind))
  const ready = async () => (await service.web.app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200
  const messages: SimulatedMessage[] = []
  // A cut waits for a request the web has received and not answered yet (what `inFlightAt`
  // below counts), not only for one the sender has out: on a busy machine those may all still be
  // on their way, or answered, when the cut comes.
  const received = () => answers.some((answer) => answer.ms === null)
  // Sequin's traffic in rounds of fresh rows, until every planned cut has hit one (at most 5 rounds).
  for (let round = 0; round < 5 && cuts.length < plan.length; round++) {
    const live = liveProgress()
    const sim = { done: false }
    const simulation = simulateSequin({ url, token: TOKEN, ...TRAFFIC, firstRow: 20_000 + round * 1_000, live })
      .finally(() => { sim.done = true })
    const cutNow = async () => sim.done || (service.web.redis.status === 'ready' && live.inFlight[0]! > 0 && received() && await ready() && received())
    while (!sim.done && cuts.length < plan.length) {
      await waitFor(cutNow, 10_000, 'the web ready with batches in flight')
      if (!sim.done) await next(plan[cuts.length]!)
      await sleep(200)
    }
    messages.push(...(await simulation).messages)
  }

  const measure = () => figures(service.redis, prefix, 'proof-ordered', messages)
  const deadline = Date.now() + 60_000
  let f = await measure()
  while (f.runsCompleted < messages.length && Date.now() < deadline) {
    await sleep(500)
    f = await measure()
  }
  await sleep(300) // a late re-run would show up here
  f = await measure()

  // What each kind of cut met: the requests in flight at it, and what they were answered.
  const count = (list: Answer[], status: number) => list.filter((a) => a.status === status).length
  const inFlightAt = (cut: Cut) => answers.filter((a) => a.at <= cut.at && (a.ms === null || a.at + a.ms >= cut.at))
  const hits = KINDS.map((kind) => {
    const ofKind = cuts.filter((cut) => cut.kind === kind)
    const hit = [...new Set(ofKind.flatMap(inFlightAt))]
    return { kind, cuts: ofKind.length, hit, ok: count(hit, 200), unavailable: count(hit, 503) }
  })
  const slowest = Math.max(...hits.flatMap((h) => h.hit).map((a) => a.ms ?? Infinity))
  // While Redis is unreachable nothing can be stored, so nothing may be acknowledged.
  const answeredAt = (a: Answer) => a.at + (a.ms ?? Infinity)
  const okWhileUnreachable = answers.filter((a) => a.status === 200 &&
    cuts.some((cut) => cut.kind === 'partition' && answeredAt(a) > cut.at + 20 && answeredAt(a) < cut.until)).length
  const metrics = (await service.web.app.inject({ method: 'GET', url: '/metrics' })).body
  const accepted = counter(metrics, 'changeflow_messages_total', /outcome="accepted"/)
  const duplicates = counter(metrics, 'changeflow_messages_total', /outcome="duplicate"/)
  reportScenario(t, {
    scenario: 'Redis connection cut mid-enqueue',
    sent: messages.length,
    acknowledged: messages.filter((m) => m.acked).length,
    runsCompleted: f.runsCompleted,
    lost: f.lost,
    duplicatedEffects: f.duplicatedEffects,
    orderViolations: f.orderViolations,
    figure: `${cuts.length} cuts; requests in flight at them answered 200/503: ` +
      `${hits.map((h) => `${h.kind} ${h.ok}/${h.unavailable}`).join(', ')} (a 200 after a cut: ioredis re-sent ` +
      `the script on its new connection within ENQUEUE_TIMEOUT); slowest ${slowest} ms; ${duplicates} changes found ` +
      'already written when their script ran again (it had run, its answer lost), so counted as duplicates: ' +
      `changeflow_messages_total says ${accepted} accepted for ${messages.length} changes; ` +
      `all answers ${count(answers, 200)}×200, ${count(answers, 503)}×503`,
  })

  t.equal(cuts.length, plan.length, 'every planned cut happened')
  // Each kind of cut met requests in flight (a sender backing off after one cut may leave the
  // next of its kind with none: the figure above says how many each met).
  t.ok(hits.every((h) => h.hit.length >= 1), 'each kind of cut met requests in flight')
  // Requests in flight at the cut itself may have had their answer already (a 200 just before);
  // those that meet the partition are answered 503 within it, at least one per partition.
  const unavailableWhilePartitioned = answers.filter((a) => a.status === 503 &&
    cuts.some((cut) => cut.kind === 'partition' && answeredAt(a) > cut.at + 20 && answeredAt(a) <= cut.until + MARGIN_MS)).length
  t.ok(unavailableWhilePartitioned >= CUTS_EACH, `a partition longer than ENQUEUE_TIMEOUT is answered 503 (${unavailableWhilePartitioned} answers)`)
  t.equal(okWhileUnreachable, 0, 'no 2xx while Redis was unreachable')
  t.same(answers.filter((a) => a.status !== 200 && a.status !== 503).map((a) => a.status), [], 'nothing but 200 and 503: no 500, no hang')
  t.ok(slowest <= ENQUEUE_TIMEOUT_MS + MARGIN_MS, `requests met by a cut answered within ENQUEUE_TIMEOUT + ${MARGIN_MS} ms (slowest ${slowest} ms)`)
  t.ok(duplicates > 0, 'some cut scripts had run: running them again added nothing')
  t.match(f, { runsCompleted: messages.length, lost: 0, duplicatedEffects: 0, orderViolations: 0 }, 'every change ran once, in row order')
})
