import { existsSync, readFileSync, statSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import t from 'tap'
import { changeId } from '../../src/ingest/identity.ts'
import { Keyspace } from '../../src/keys.ts'
import type { SequinMetadata } from '../../src/sequin/message.ts'
import { recordAnswers, type Answer } from '../helpers/answers.ts'
import { reportScenario } from '../helpers/fault-report.ts'
import { spawnRole, WORKER_ENV } from '../helpers/processes.ts'
import { figures, proofJobsDir } from '../helpers/proof.ts'
import { startRedisServer } from '../../scripts/lib/redis-server.ts'
import { liveProgress, simulateSequin } from '../../src/simulate/sequin.ts'
import { startService, TOKEN, waitFor } from '../helpers/service.ts'
import { logSink, suiteLog } from '../helpers/suite-logs.ts'

const MAXMEMORY = '6mb'
const FULL_FOR_MS = 3_000

const memoryOf = async (admin: Redis) => Number(/^used_memory:(\d+)/m.exec(await admin.info('memory'))?.[1] ?? 0)
const mb = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(1)} MB`

const TITLE = `Redis full (maxmemory ${MAXMEMORY}, noeviction): no 2xx without the batch stored; all drains once memory is freed`
const TRAFFIC = { table: 'accounts', rows: 400, changesPerRow: 6, batchSize: 20, concurrency: 6, messageBytes: 1_500, firstRow: 30_000 }

t.test(TITLE, async (t) => {
  const redisArgs = ['--maxmemory', MAXMEMORY, '--maxmemory-policy', 'noeviction']
  const redis = await startRedisServer(redisArgs, { log: suiteLog('redis-server') })
  const env = { JOBS_DIR: proofJobsDir, ENQUEUE_TIMEOUT: '1s', REDIS_CHECK_INTERVAL: '1s' }
  const webLog = suiteLog('web-in-process')
  const logFrom = existsSync(webLog.path) ? statSync(webLog.path).size : 0 // the file outlives a run
  const service = await startService({ redisUrl: redis.url, workers: false, env, logs: logSink(webLog) })
  const answers = recordAnswers(service.web.app.server)
  await service.web.app.listen({ host: '127.0.0.1', port: 0 })
  const url = `http://127.0.0.1:${(service.web.app.server.address() as AddressInfo).port}/webhooks/sequin`
  const prefix = service.config.REDIS_PREFIX
  const admin = new Redis(redis.url)
  admin.on('error', () => {})
  // Workers run throughout, slower than the webhook fills Redis: at the limit their writes fail too.
  const workerEnv = { ...WORKER_ENV, JOBS_DIR: proofJobsDir, REDIS_URL: redis.url, REDIS_PREFIX: prefix }
  const workers = [0, 1].map(() => spawnRole('worker', { ...workerEnv, PROOF_MAX_LATENCY_MS: '40' }))
  t.teardown(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')))
    admin.disconnect()
    await service.close()
    await redis.stop()
  })

  const live = liveProgress()
  const simulation = simulateSequin({ url, token: TOKEN, ...TRAFFIC, timeoutMs: 90_000, live })
  // Full: the webhook has refused batches for FULL_FOR_MS.
  await waitFor(() => answers.some((a) => a.status >= 300), 30_000, 'Redis to fill up')
  const fullAt = Date.now()
  const ackedWhenFull = live.acked
  await sleep(FULL_FOR_MS)
  const ackedWhileFull = live.acked - ackedWhenFull
  const usedWhenFull = await memoryOf(admin)
  const readyWhileFull = (await service.web.app.inject({ method: 'GET', url: '/readyz' })).statusCode
  const freedAt = Date.now()
  await admin.config('SET', 'maxmemory', '0') // the operator raises the limit

  const sim = await simulation
  const measure = () => figures(service.redis, prefix, 'proof-ordered', sim.messages)
  const deadline = Date.now() + 60_000
  let f = await measure()
  while (f.runsCompleted < sim.messages.length && Date.now() < deadline) {
    await sleep(500)
    f = await measure()
  }
  await sleep(300) // a late re-run would show up here
  f = await measure()

  // Every acknowledged change is recorded: its dedup mark, kept for DEDUP_TTL, is there.
  const keys = new Keyspace(prefix)
  let unrecorded = 0
  for (const message of sim.messages.filter((m) => m.acked)) {
    unrecorded += 1 - await admin.exists(keys.seen(changeId(message.body.metadata as SequinMetadata)))
  }
  const full = answers.filter((a) => a.at >= fullAt && a.at < freedAt)
  const statuses = (list: Answer[]) => Object.entries(list.reduce<Record<string, number>>((all, a) => {
    all[a.status] = (all[a.status] ?? 0) + 1
    return all
  }, {})).map(([status, n]) => `${n}×${status}`).join(', ')
  const refusedWhileFull = full.filter((a) => a.status !== 200)
  // The simulator pads each record with a run of x: a log line holding one holds row data.
  const webLines = readFileSync(webLog.path).subarray(logFrom).toString('utf8').split('\n')
  const linesWithRows = webLines.filter((line) => line.includes('x'.repeat(64)))
  const longest = Math.max(...webLines.map((line) => line.length))
  const workerErrors = workers.flatMap((w) => w.output().split('\n')).filter((line) => line.includes('"msg":"worker error"'))
  const workerErrorBytes = workerErrors.reduce((sum, line) => sum + line.length, 0)
  reportScenario(t, {
    scenario: `Redis full (maxmemory ${MAXMEMORY}, noeviction)`,
    sent: sim.messages.length,
    acknowledged: sim.messages.filter((m) => m.acked).length,
    runsCompleted: f.runsCompleted,
    lost: f.lost,
    duplicatedEffects: f.duplicatedEffects,
    orderViolations: f.orderViolations,
    figure: `full at ${mb(usedWhenFull)} used: for ${FULL_FOR_MS / 1000} s batches were refused (${statuses(full)}), ` +
      `${ackedWhileFull} changes acknowledged meanwhile, /readyz ${readyWhileFull}; after CONFIG SET maxmemory 0 all ` +
      `drained in ${((Date.now() - freedAt) / 1000).toFixed(1)} s; ${unrecorded} acknowledged changes without their ` +
      `dedup mark; all answers ${statuses(answers)}; ${linesWithRows.length} web log lines carry row data (longest ` +
      `${(longest / 1024).toFixed(0)} KB); workers logged ${workerErrors.length} "worker error" lines (${mb(workerErrorBytes)})`,
  })

  t.ok(full.length > 0, 'batches arrived while Redis was full')
  t.equal(unrecorded, 0, 'every acknowledged change is recorded in Redis')
  t.match(f, { runsCompleted: sim.messages.length, lost: 0, duplicatedEffects: 0, orderViolations: 0 },
    'once memory was freed every change ran once, in row order')
  // Out of memory is Redis refusing writes, as when it is unreachable: Sequin should be told to
  // retry later (503 + Retry-After), not that changeflow failed (500, "webhook failed" in the log).
  const not503 = refusedWhileFull.map((a) => a.status).filter((s) => s !== 503)
  t.same(not503, [], 'a full Redis is answered 503 (unavailable), not 500')
  // An unexpected Redis error is logged with ioredis's `command`, whose arguments are the batch.
  t.equal(linesWithRows.length, 0, 'no log line carries the rows of a batch')
})
