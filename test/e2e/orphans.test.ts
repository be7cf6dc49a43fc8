import t from 'tap'
import { loadConfig } from '../../src/config.ts'
import { createLogger } from '../../src/logger.ts'
import { Keyspace } from '../../src/keys.ts'
import { createWeb, createWorker } from '../../src/runtime/services.ts'
import { loadWorkflows } from '../../src/workflows/load.ts'
import { executions, reset } from '../fixtures/jobs/_recorder.ts'
import { cliOf, REDIS_URL, startService, waitFor } from '../helpers/service.ts'
import { message } from '../helpers/stack.ts'

// The release that defined ledger-apply accepted changes, then was replaced by one that renamed
// it ledger-apply-v2: the old queue's runs have no worker any more.
const old = await startService({ workers: false })
t.teardown(() => old.close())
t.beforeEach(() => reset())
const keys = new Keyspace(old.config.REDIS_PREFIX)

let lsn = 2_000_000
const change = (id: number, action = 'insert') => message('ledger', id, action, lsn++)

const cli = cliOf(old)
const blockedGauge = async (reason: string) => {
  const text = (await old.web.app.inject({ method: 'GET', url: '/metrics' })).body
  return Number(new RegExp(`^changeflow_rows_blocked\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN)
}

t.test('work of a workflow no worker defines is reported, counted as blocked, and can be discarded', async (t) => {
  // Rows 71 and 72: a run at the head of each, a second one parked behind it; row 73: one run.
  await old.post({ data: [change(71), change(72), change(73)] })
  await old.post({ data: [change(71, 'update'), change(72, 'update')] })

  const logs: string[] = []
  const config = loadConfig({
    REDIS_PREFIX: old.config.REDIS_PREFIX,
    JOBS_DIR: new URL('../fixtures/jobs-renamed', import.meta.url).pathname,
    RECONCILE_INTERVAL: '200ms',
    LOG_LEVEL: 'info',
  })
  const logger = createLogger(config, { write: (line: string) => { logs.push(line) } })
  const worker = createWorker({ config, logger, redisUrl: REDIS_URL, workflows: await loadWorkflows(config.JOBS_DIR) })
  t.teardown(() => worker.close())

  await waitFor(() => logs.some((line) => line.includes('"queue":"ledger-apply"')), 5_000, 'the start report')
  const report = JSON.parse(logs.find((line) => line.includes('a workflow this deployment does not define'))!)
  t.match(report, { level: 40, queue: 'ledger-apply', jobs: { waiting: 3 }, consumedElsewhere: false })
  t.match(report.msg, 'discard-workflow ledger-apply')

  await waitFor(async () => await old.redis.zcard(keys.blocked('orphaned')) === 3, 5_000, 'the three rows counted as blocked')
  t.equal(await blockedGauge('orphaned'), 3, 'changeflow_rows_blocked{reason="orphaned"}')
  t.equal(await blockedGauge('failed'), 0)
  const listed = (await cli('blocked', '--json')).out.map((line) => JSON.parse(line))
  t.same(listed.map((row) => [row.reason, row.workflow, row.key[0], row.state, row.waiting]).sort(),
    [['orphaned', 'ledger-apply', '71', 'waiting', 1], ['orphaned', 'ledger-apply', '72', 'waiting', 1], ['orphaned', 'ledger-apply', '73', 'waiting', 0]])
  const orphans = await cli('orphans')
  t.match(orphans.out[0], /^QUEUE +WAITING +DELAYED +ACTIVE +FAILED +TOTAL$/)
  t.match(orphans.out[1], /^ledger-apply +3 +0 +0 +0 +3$/)
  t.match(orphans.out[2], /^ledger-audit +2 +0 +0 +0 +2$/, 'the unordered audit of the updates is left behind too')

  // The new release's web: its dashboard and metrics show the old queue, marked as such.
  const web = await createWeb({ config, logger, redisUrl: REDIS_URL, workflows: await loadWorkflows(config.JOBS_DIR), tokens: ['t'], board: { username: 'ops', password: 'pw' } })
  t.teardown(() => web.close())
  const api = await web.app.inject({ url: '/admin/queues/api/queues', headers: { authorization: `Basic ${Buffer.from('ops:pw').toString('base64')}` } })
  const boardQueues = (api.json() as { queues: Array<{ name: string, displayName: string, counts: Record<string, number> }> }).queues
  t.match(boardQueues.find((queue) => queue.name === 'ledger-apply'), { displayName: 'ledger-apply (not defined here)', counts: { waiting: 3 } })
  t.ok(boardQueues.some((queue) => queue.name === 'ledger-apply-v2'), 'beside its own queues')
  const metrics = (await web.app.inject({ url: '/metrics' })).body
  t.match(metrics, /^changeflow_queue_jobs\{queue="ledger-apply",state="waiting"\} 3$/m)

  // One run given up by hand, from what Redis holds (ledger-apply is in no JOBS_DIR of this release).
  const row73 = listed.find((row) => row.key[0] === '73')
  const one = await cli('discard', 'ledger-apply', row73.jobId)
  t.equal(one.code, 0, one.stderr)
  t.match(one.stdout, /\(discarded\)/)

  // The rest in one command: the parked runs enter the old queue as their turn comes, and go too.
  const all = await cli('discard-workflow', 'ledger-apply')
  t.equal(all.code, 0, all.stderr)
  t.match(all.stdout, /^discarded 2 runs of ledger-apply from its queue; runs of it parked in rows are given up/,
    'the two heads from the queue; the two runs parked behind them were passed over')
  t.equal(await old.redis.zcard(keys.blocked('orphaned')), 0, 'no row is blocked any more')
  t.same((await old.redis.keys(`${keys.own}:rowq:*`)), [], 'every row moved on')
  t.match((await cli('discard-workflow', 'ledger-audit')).stdout, /^discarded 2 runs of ledger-audit/)
  t.same((await cli('orphans')).out, ['no orphaned work: a worker consumes every queue that holds jobs'])
  t.same(executions, [], 'nothing of the old workflow ran')

  // An old replica still accepting for the given-up name starts nothing that would block a row.
  t.match((await old.post({ data: [change(74)] })).json(), { accepted: 1, jobs: 0 })
  t.same((await old.redis.keys(`${keys.own}:rowq:*`)), [], 'no run of it joined a row')
  t.equal(await old.queue('ledger-apply').count(), 0)

  const refused = await cli('discard-workflow', 'ledger-apply-v2')
  t.equal(refused.code, 1)
  t.match(refused.stderr, /a worker still runs ledger-apply-v2/)
})
