import t from 'tap'
import pino from 'pino'
import { loadConfig } from '../../src/config.ts'
import { Keyspace } from '../../src/keys.ts'
import { runCli } from '../../src/cli/program.ts'
import { createWorker } from '../../src/runtime/services.ts'
import { loadWorkflows } from '../../src/workflows/load.ts'
import { failures, reset } from '../fixtures/jobs/_recorder.ts'
import { REDIS_URL, startService, waitFor } from '../helpers/service.ts'
import { message } from '../helpers/stack.ts'

// A row whose head step failed for good, and whose workflow is then renamed or removed in a
// deploy, is one blocked row: listed once by `blocked` and counted once by the metric.
const old = await startService({ env: { RECONCILE_INTERVAL: '200ms' } })
t.beforeEach(() => reset())
const keys = new Keyspace(old.config.REDIS_PREFIX)

const change = (id: number, lsn: number) => message('ledger', id, 'insert', lsn)

t.test('a failed head of a removed workflow is one blocked row, not two', async (t) => {
  failures.set('ledger-apply/61', 1)
  await old.post({ data: [change(61, 4_400_001)] })
  await old.post({ data: [change(61, 4_400_002)] }) // waits behind it
  await waitFor(async () => await old.redis.zcard(keys.blocked('failed')) === 1, 5_000, 'the row blocked by its failure')

  // The deploy: the old workers stop, the new release (ledger-apply renamed) runs.
  await old.worker!.close()
  const config = loadConfig({ REDIS_PREFIX: old.config.REDIS_PREFIX, JOBS_DIR: new URL('../fixtures/jobs-renamed', import.meta.url).pathname, RECONCILE_INTERVAL: '200ms', LOG_LEVEL: 'silent' })
  const worker = createWorker({ config, logger: pino({ level: 'silent' }), redisUrl: REDIS_URL, workflows: await loadWorkflows(config.JOBS_DIR) })
  t.teardown(async () => {
    await worker.close()
    await old.close()
  })
  // Give the new release's reconciler a few sweeps (the old heartbeat lapses after 600 ms).
  await new Promise((resolve) => setTimeout(resolve, 2_000))

  const failed = await old.redis.zcard(keys.blocked('failed'))
  const orphaned = await old.redis.zcard(keys.blocked('orphaned'))
  t.equal(failed + orphaned, 1, `one blocked row counted once (failed ${failed}, orphaned ${orphaned})`)
  const out: string[] = []
  await runCli(['blocked', '--json'], { config: old.config, redis: old.redis, out: (line) => out.push(line), err: () => {} })
  t.equal(out.length, 1, `blocked lists the row once: ${out.map((line) => JSON.parse(line).reason).join(', ')}`)
})
