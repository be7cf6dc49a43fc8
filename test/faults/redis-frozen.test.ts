import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import v8 from 'node:v8'
import vm from 'node:vm'
import t from 'tap'
import { changeId } from '../../src/ingest/identity.ts'
import { Keyspace } from '../../src/keys.ts'
import type { SequinMetadata } from '../../src/sequin/message.ts'
import { recordAnswers } from '../helpers/answers.ts'
import { reportScenario } from '../helpers/fault-report.ts'
import { spawnRole, WORKER_ENV } from '../helpers/processes.ts'
import { figures, proofJobsDir } from '../helpers/proof.ts'
import { startRedisServer } from '../../scripts/lib/redis-server.ts'
import { percentile, simulateSequin, type SimulatedMessage } from '../../src/simulate/sequin.ts'
import { startService, TOKEN, waitFor } from '../helpers/service.ts'
import { logSink, suiteLog } from '../helpers/suite-logs.ts'

// Memory is measured after a full collection; tap does not pass --expose-gc.
v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

const ENQUEUE_TIMEOUT_MS = 1_000
const MARGIN_MS = 750
const FREEZE_MS = 10_000
const TRAFFIC = { table: 'accounts', rows: 200, changesPerRow: 5, firstRow: 10_000, batchSize: 20, concurrency: 8 }
const BURST = { requests: 40, changes: 25, padBytes: 8_000, firstRow: 50_000 }
const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }

/** Fresh inserts into accounts_unordered, one row each, padded so that the burst weighs megabytes. */
function burstBatches (): Array<{ messages: SimulatedMessage[], json: Buffer }> {
  let row = BURST.firstRow
  const batches = Array.from({ length: BURST.requests }, () => Array.from({ length: BURST.changes }, () => {
    const lsn = 900_000_000 + row
    const metadata = {
      table_schema: 'public',
      table_name: 'accounts_unordered',
      commit_timestamp: new Date().toISOString(),
      commit_lsn: lsn,
      commit_idx: 0,
      idempotency_key: Buffer.from(`${lsn}:0`).toString('base64'),
      record_pks: [String(row)],
      database: { id: 'sim-db', name: 'sim' },
      consumer: { id: 'sim-sink', name: 'sim' },
    }
    const record = { id: row, seq: 0, balance: 0, note: 'x'.repeat(BURST.padBytes) }
    const body = { action: 'insert', record, changes: null, metadata }
    const message = { row, group: `accounts_unordered:${row++}`, seq: 0, lsn, table: 'accounts_unordered', committedAt: Date.now(), body }
    return { ...message, deliveries: 0, visibleAt: 0, acked: false }
  }))
  return batches.map((messages) => ({ messages, json: Buffer.from(JSON.stringify({ data: messages.map((m) => m.body) })) }))
}

type Posted = { status: number | 'timeout' | 'connection error', body: { duplicates?: number } }

/** One Sequin-like POST of a prepared body; its own timer, so nothing keeps the body once answered. */
async function post (url: string, batch: { messages: SimulatedMessage[], json: Buffer }): Promise<Posted> {
  const abort = new AbortController()
  const timer = setTimeout(() => abort.abort(new DOMException('no answer in 10 s', 'TimeoutError')), 10_000)
  try {
    const response = await fetch(url, { method: 'POST', headers, body: batch.json, signal: abort.signal })
    const body = await response.json() as Posted['body']
    if (response.ok) for (const message of batch.messages) message.acked = true
    return { status: response.status, body }
  } catch (error) {
    return { status: (error as Error).name === 'TimeoutError' ? 'timeout' : 'connection error', body: {} }
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Heap plus memory outside it (buffers, a socket's unsent writes), after full collections: a
 * buffer's memory is given back by a task after the collection that found it unreachable.
 */
async function memory () {
  for (let i = 0; i < 3; i++) {
    gc()
    await sleep(50)
  }
  const { heapUsed, external, rss } = process.memoryUsage()
  return { held: heapUsed + external, rss }
}
const mb = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(1)} MB`

const TITLE = 'Redis frozen (SIGSTOP) under POSTs: 503 within ENQUEUE_TIMEOUT, memory bounded, all delivered after SIGCONT'

t.test(TITLE, async (t) => {
  const redis = await startRedisServer([], { log: suiteLog('redis-server') })
  // REDIS_CHECK_INTERVAL 2 s: within the freeze a readiness check times out (after 5 s) too.
  const env = { JOBS_DIR: proofJobsDir, ENQUEUE_TIMEOUT: `${ENQUEUE_TIMEOUT_MS}ms`, REDIS_CHECK_INTERVAL: '2s' }
  const service = await startService({ redisUrl: redis.url, workers: false, env, logs: logSink(suiteLog('web-in-process')) })
  const answers = recordAnswers(service.web.app.server)
  await service.web.app.listen({ host: '127.0.0.1', port: 0 })
  const url = `http://127.0.0.1:${(service.web.app.server.address() as AddressInfo).port}/webhooks/sequin`
  const prefix = service.config.REDIS_PREFIX
  const workerEnv = { ...WORKER_ENV, JOBS_DIR: proofJobsDir, REDIS_URL: redis.url, REDIS_PREFIX: prefix }
  const workers = [0, 1].map(() => spawnRole('worker', { ...workerEnv, PROOF_MAX_LATENCY_MS: '5' }))
  t.teardown(async () => {
    redis.resume()
    await Promise.all(workers.map((w) => w.stop('SIGKILL')))
    await service.close()
    await redis.stop()
  })

  // Sequin's traffic runs throughout: before, during and after the freeze.
  const simulation = simulateSequin({ url, token: TOKEN, ...TRAFFIC, timeoutMs: 60_000 })
  // A bounded burst for the frozen Redis: 40 concurrent requests of 25 padded changes each,
  // prepared before the baseline so that the memory figures are the service's alone.
  const burst = burstBatches()
  const burstBytes = burst.reduce((sum, batch) => sum + batch.json.length, 0)
  await waitFor(() => answers.filter((a) => a.status === 200).length >= 3, 15_000, 'the first batches to be accepted')
  const before = await memory()

  const frozenAt = Date.now()
  redis.pause()
  const burstAnswers = await Promise.all(burst.map((batch) => post(url, batch)))
  const frozen = await memory()
  await sleep(Math.max(0, frozenAt + FREEZE_MS - Date.now()))
  const overdue = answers.filter((a) => a.ms === null && Date.now() - a.at > ENQUEUE_TIMEOUT_MS + MARGIN_MS).length
  const resumedAt = Date.now()
  redis.resume()

  // The scripts the frozen Redis never answered are still in the web's connection: they run now,
  // before this PING. Then Sequin redelivers the batches it was answered 503 for.
  await service.web.redis.ping()
  const keys = new Keyspace(prefix)
  const burstMessages = burst.flatMap((batch) => batch.messages)
  let lateWrites = 0
  for (const message of burstMessages) {
    lateWrites += await service.redis.exists(keys.seen(changeId(message.body.metadata as SequinMetadata)))
  }
  // As Sequin does, a batch answered 503 is sent again: the web answers "not ready" until its next
  // Redis check (REDIS_CHECK_INTERVAL) clears the failure the freeze left.
  let notReadyRetries = 0
  const redelivered = await Promise.all(burst.map(async (batch) => {
    const deadline = Date.now() + 10_000
    for (;;) {
      const answer = await post(url, batch)
      if (answer.status !== 503 || Date.now() > deadline) return answer
      notReadyRetries++
      await sleep(200)
    }
  }))
  const sim = await simulation

  const all = [...sim.messages, ...burstMessages]
  const measure = async () => {
    const ordered = await figures(service.redis, prefix, 'proof-ordered', sim.messages)
    const unordered = await figures(service.redis, prefix, 'proof-unordered', burstMessages)
    return { ordered, unordered, runsCompleted: ordered.runsCompleted + unordered.runsCompleted }
  }
  const deadline = Date.now() + 60_000
  let f = await measure()
  while (f.runsCompleted < all.length && Date.now() < deadline) {
    await sleep(500)
    f = await measure()
  }
  await sleep(300) // a late re-run would show up here
  f = await measure()
  const after = await memory()

  const during = answers.filter((a) => a.at >= frozenAt && a.at < resumedAt - ENQUEUE_TIMEOUT_MS - MARGIN_MS)
  const durations = during.map((a) => a.ms ?? Infinity)
  const slowest = Math.max(...durations)
  const firstOk = answers.find((a) => a.at >= resumedAt && a.status === 200)
  // A 503 at the enqueue deadline took ENQUEUE_TIMEOUT; one refused as not ready, a few ms.
  const atDeadline = during.filter((a) => (a.ms ?? 0) >= ENQUEUE_TIMEOUT_MS - 50).length
  const reRuns = Number(await service.redis.get(`{${prefix}}:proof:deduplicated`) ?? 0)
  const lost = f.ordered.lost + f.unordered.lost
  const duplicatedEffects = f.ordered.duplicatedEffects + f.unordered.duplicatedEffects
  const orderViolations = f.ordered.orderViolations + f.unordered.orderViolations
  const heldFrozen = frozen.held - before.held
  const heldAfter = after.held - before.held
  reportScenario(t, {
    scenario: `Redis frozen (SIGSTOP ${FREEZE_MS / 1000} s)`,
    sent: all.length,
    acknowledged: all.filter((m) => m.acked).length,
    runsCompleted: f.runsCompleted,
    lost,
    duplicatedEffects,
    orderViolations,
    figure: `${during.length} answers while frozen: all 503 (${atDeadline} at the ${ENQUEUE_TIMEOUT_MS} ms ` +
      `enqueue deadline, the rest not ready), p50 ${percentile(durations, 50)} ms, max ${slowest} ms; ` +
      `burst ${BURST.requests}×${BURST.changes} changes (${mb(burstBytes)}) held +${mb(heldFrozen)} while frozen, ` +
      `${mb(heldAfter)} after (rss ${mb(before.rss)} → ${mb(frozen.rss)} → ${mb(after.rss)}); ` +
      `${lateWrites}/${burstMessages.length} burst changes written late, after SIGCONT; ` +
      `first 2xx ${firstOk ? `${firstOk.at - resumedAt} ms` : 'never'} after SIGCONT; ` +
      `redelivered burst: ${notReadyRetries} 503s sent again before the web was ready; ` +
      `${reRuns} step re-runs absorbed by idempotency keys`,
  })

  t.ok(during.length >= BURST.requests, `requests arrived while Redis was frozen (${during.length})`)
  t.same(during.filter((a) => a.status !== 503).map((a) => a.status), [], 'every answer while frozen was 503')
  t.ok(slowest <= ENQUEUE_TIMEOUT_MS + MARGIN_MS, `each within ENQUEUE_TIMEOUT + ${MARGIN_MS} ms (slowest ${slowest} ms)`)
  t.equal(overdue, 0, 'no request was left open past the deadline')
  t.same(burstAnswers.map((a) => a.status).filter((s) => s !== 503), [], 'the whole burst was answered 503')
  t.ok(atDeadline > 0, 'some were answered at the enqueue deadline (their script had been sent)')
  t.ok(heldFrozen < 2 * burstBytes + 8 * 1024 ** 2,
    `memory held while frozen is of the burst's size (+${mb(heldFrozen)} for ${mb(burstBytes)})`)
  t.ok(heldAfter < 6 * 1024 ** 2, `and given back once Redis answered (${mb(heldAfter)} over the baseline)`)
  t.same(redelivered.map((a) => a.status).filter((s) => s !== 200), [], 'the redelivered burst was accepted')
  const duplicates = redelivered.reduce((sum, a) => sum + (a.body.duplicates ?? 0), 0)
  t.equal(duplicates, lateWrites, 'every late write was taken as a duplicate')
  const others = answers.filter((a) => a.status !== 200 && a.status !== 503).map((a) => a.status)
  t.same(others, [], 'nothing but 200 and 503, ever')
  t.ok(firstOk, 'the webhook accepted batches again after SIGCONT')
  t.match({ lost, duplicatedEffects, orderViolations }, { lost: 0, duplicatedEffects: 0, orderViolations: 0 })
  t.equal(f.runsCompleted, all.length, 'every change ran')
})
