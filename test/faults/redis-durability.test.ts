import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { changeId } from '../../src/ingest/identity.ts'
import { Keyspace } from '../../src/keys.ts'
import type { SequinMetadata } from '../../src/sequin/message.ts'
import { reportScenario } from '../helpers/fault-report.ts'
import { spawnRole, WORKER_ENV } from '../helpers/processes.ts'
import { figures, proofJobsDir } from '../helpers/proof.ts'
import { startRedisServer } from '../../scripts/lib/redis-server.ts'
import { liveProgress, simulateSequin, type SimulatorResult } from '../../src/simulate/sequin.ts'
import { startService, TOKEN, waitFor } from '../helpers/service.ts'
import { logSink, suiteLog } from '../helpers/suite-logs.ts'

/** Redis's own bound for appendfsync everysec: a write is postponed at most 2 s behind a slow fsync. */
const EVERYSEC_WINDOW_MS = 2_000
const KILL_AFTER_ACKS = 900
const LOAD = { rows: 600, changesPerRow: 3, batchSize: 20, concurrency: 8 }

/**
 * The webhook and two workers on a private Redis started with `redisArgs`; Sequin's traffic; a
 * SIGKILL of redis-server under load and a restart on the same port and data folder. Counts the
 * changes acknowledged with a 2xx that Redis no longer holds.
 */
async function killUnderLoad (t: Test, redisArgs: string[], firstRow: number, simTimeoutMs: number) {
  const redis = await startRedisServer(redisArgs, { log: suiteLog('redis-server') })
  const env = { JOBS_DIR: proofJobsDir, ENQUEUE_TIMEOUT: '1s', REDIS_CHECK_INTERVAL: '1s' }
  const logs = logSink(suiteLog('web-in-process'))
  const service = await startService({ redisUrl: redis.url, workers: false, env, logs })
  await service.web.app.listen({ host: '127.0.0.1', port: 0 })
  const url = `http://127.0.0.1:${(service.web.app.server.address() as AddressInfo).port}/webhooks/sequin`
  const prefix = service.config.REDIS_PREFIX
  const workerEnv = { ...WORKER_ENV, JOBS_DIR: proofJobsDir, REDIS_URL: redis.url, REDIS_PREFIX: prefix }
  const workers = [0, 1].map(() => spawnRole('worker', { ...workerEnv, PROOF_MAX_LATENCY_MS: '5' }))
  const admin = new Redis(redis.url)
  admin.on('error', () => {})
  t.teardown(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')))
    admin.disconnect()
    await service.close()
    await redis.stop()
  })
  const readiness = async () => {
    const response = await service.web.app.inject({ method: 'GET', url: '/readyz' })
    return { ready: response.statusCode === 200, reason: String(response.json().reason ?? '') }
  }

  const live = liveProgress()
  const simulation = simulateSequin({ url, token: TOKEN, table: 'accounts', ...LOAD, firstRow, timeoutMs: simTimeoutMs, live })
    .catch((error: Error) => error)
  // Acknowledgements over time, to know how many came within the last seconds before the kill.
  const acks: Array<{ at: number, acked: number }> = []
  const sampler = setInterval(() => acks.push({ at: Date.now(), acked: live.acked }), 50)
  t.teardown(() => clearInterval(sampler))
  await waitFor(() => live.acked >= KILL_AFTER_ACKS && live.inFlight[0]! > 0, 30_000, 'load with batches in flight')
  const persistence = await admin.info('persistence')
  const killedAt = Date.now()
  const ackedAtKill = live.acked
  await redis.kill('SIGKILL')
  clearInterval(sampler)
  const ackedBefore = (ms: number) => acks.filter((sample) => sample.at <= killedAt - ms).at(-1)?.acked ?? 0
  await sleep(300)
  // Answers already on their way when Redis died count too: their batches were written before it.
  const ackedWhileDown = live.acked
  await redis.restart()
  const restartedAt = Date.now()
  const keysAfterRestart = await admin.dbsize()
  await waitFor(async () => (await readiness()).ready, 5_000, 'the web to be ready again').catch(() => {})
  const afterRestart = await readiness()
  const readyAfterMs = afterRestart.ready ? Date.now() - restartedAt : null
  const sim = await simulation
  const ackedInWindow = ackedWhileDown - ackedBefore(EVERYSEC_WINDOW_MS)
  const acked = { ackedAtKill, ackedWhileDown, ackedInWindow }
  return { admin, prefix, sim, live, persistence, restartedAt, keysAfterRestart, afterRestart, readyAfterMs, ...acked }
}

/** Acknowledged changes whose dedup mark (kept for DEDUP_TTL) is gone: Redis lost them. */
async function unrecorded (admin: Redis, prefix: string, sim: SimulatorResult): Promise<number> {
  const keys = new Keyspace(prefix)
  let missing = 0
  for (const message of sim.messages.filter((m) => m.acked)) {
    missing += 1 - await admin.exists(keys.seen(changeId(message.body.metadata as SequinMetadata)))
  }
  return missing
}

/**
 * Waits for every run, or until none completed for 20 s (a lost change never will; a BullMQ
 * worker whose Redis went away waits its runRetryDelay, 15 s by default, before it fetches again).
 */
async function settle (admin: Redis, prefix: string, sim: SimulatorResult) {
  const deadline = Date.now() + 60_000
  let f = await figures(admin, prefix, 'proof-ordered', sim.messages)
  let progressAt = Date.now()
  while (f.runsCompleted < sim.messages.length && Date.now() < deadline && Date.now() - progressAt < 20_000) {
    await sleep(500)
    const next = await figures(admin, prefix, 'proof-ordered', sim.messages)
    if (next.runsCompleted > f.runsCompleted) progressAt = Date.now()
    f = next
  }
  await sleep(300) // a late re-run would show up here
  return figures(admin, prefix, 'proof-ordered', sim.messages)
}

const field = (info: string, name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim() ?? '?'

for (const [fsync, firstRow] of [['everysec', 60_000], ['always', 70_000]] as const) {
  t.test(`appendonly yes, appendfsync ${fsync}: redis-server SIGKILLed under load and restarted on its data`, async (t) => {
    const run = await killUnderLoad(t, ['--appendonly', 'yes', '--appendfsync', fsync], firstRow, 60_000)
    if (run.sim instanceof Error) throw run.sim
    const sim = run.sim
    const missing = await unrecorded(run.admin, run.prefix, sim)
    const f = await settle(run.admin, run.prefix, sim)
    const drainedS = ((Date.now() - run.restartedAt) / 1000).toFixed(1)
    reportScenario(t, {
      scenario: `Redis SIGKILL, appendfsync ${fsync}`,
      sent: sim.messages.length,
      acknowledged: sim.messages.filter((m) => m.acked).length,
      runsCompleted: f.runsCompleted,
      lost: f.lost,
      duplicatedEffects: f.duplicatedEffects,
      orderViolations: f.orderViolations,
      figure: `lost with ${fsync}: ${missing} acknowledged changes gone from Redis, ${f.lost} runs never completed ` +
        `(killed after ${run.ackedWhileDown} acks, ${run.ackedInWindow} in its last ${EVERYSEC_WINDOW_MS / 1000} s; ` +
        `aof_delayed_fsync ${field(run.persistence, 'aof_delayed_fsync')}); web ready ` +
        `${run.readyAfterMs === null ? `never (${run.afterRestart.reason})` : `${run.readyAfterMs} ms`} after the restart, ` +
        `every run done ${drainedS} s after it`,
    })
    t.ok(run.ackedAtKill >= KILL_AFTER_ACKS, 'Redis was killed under load')
    t.ok(run.keysAfterRestart > 0, `the restarted Redis loaded its append-only file (${run.keysAfterRestart} keys)`)
    t.ok(run.afterRestart.ready, 'the data-loss marker survived: the web is ready again')
    if (fsync === 'always') {
      t.equal(missing, 0, 'with always, every acknowledged change survived the SIGKILL')
    } else {
      t.ok(missing <= run.ackedInWindow,
        `with everysec, at most the last ${EVERYSEC_WINDOW_MS / 1000} s of acknowledged changes are lost (${missing} of ${run.ackedInWindow})`)
    }
    t.equal(f.lost, missing, 'every change Redis still held ran: only the lost ones never did')
    t.match(f, { duplicatedEffects: 0, orderViolations: 0 }, 'none ran twice or out of row order')
  })
}

t.test('control, appendonly no: a SIGKILL loses every acknowledged change, and the tripwire keeps the web not ready', async (t) => {
  const run = await killUnderLoad(t, ['--appendonly', 'no'], 80_000, 8_000)
  // Sequin cannot finish: the web refuses everything until an operator restarts it.
  const timedOut = run.sim instanceof Error
  // Nothing can be acknowledged after the restart (the web is not ready): every acknowledgement
  // is of a batch written before the kill.
  const seenKeys = (await run.admin.keys(new Keyspace(run.prefix).seen('*'))).length
  const lost = run.live.acked - Math.min(seenKeys, run.live.acked)
  reportScenario(t, {
    scenario: 'Redis SIGKILL, appendonly no (control)',
    sent: LOAD.rows * LOAD.changesPerRow,
    acknowledged: run.live.acked,
    runsCompleted: 0,
    lost,
    duplicatedEffects: 0,
    orderViolations: 0,
    figure: `lost with no append-only file: ${lost} of ${run.live.acked} acknowledged changes; ` +
      `${run.keysAfterRestart} keys after the restart; web ` +
      `${run.afterRestart.ready ? 'ready' : `not ready: ${run.afterRestart.reason.slice(0, 90)}…`}`,
  })
  t.equal(seenKeys, 0, 'the restarted Redis came back without a single change')
  t.equal(run.live.acked, run.ackedWhileDown, 'nothing was acknowledged after the restart')
  t.ok(lost >= KILL_AFTER_ACKS && lost === run.live.acked, 'every acknowledged change is gone')
  t.notOk(run.afterRestart.ready, 'the web is not ready after the loss')
  t.match(run.afterRestart.reason, /Redis lost data/, 'because the data-loss marker vanished')
  t.ok(timedOut, 'Sequin could not deliver anything more: every request was refused')
})
