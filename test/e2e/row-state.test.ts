import t from 'tap'
import { Keyspace } from '../../src/keys.ts'
import { withScripts } from '../../src/redis/scripts.ts'
import { reconcileRow, retryStep } from '../../src/runs/rows.ts'
import { executions, failures, hold, release, reset } from '../fixtures/jobs/_recorder.ts'
import { startService, waitFor } from '../helpers/service.ts'
import { message } from '../helpers/stack.ts'

// A short dedup horizon, so that what happens after it passes can be seen.
const service = await startService({ env: { DEDUP_TTL: '1s', KEEP_COMPLETED_AGE: '1s', RECONCILE_INTERVAL: '200ms' } })
t.teardown(() => service.close())
t.beforeEach(() => reset())
const keys = new Keyspace(service.config.REDIS_PREFIX)
const redis = withScripts(service.redis)
const pastDedup = () => new Promise((resolve) => setTimeout(resolve, 1_300))

let lsn = 1_000_000
const change = (table: string, id: number, action = 'insert', at = lsn++, extra: Record<string, unknown> = {}) => message(table, id, action, at, extra)
const ran = (workflow: string, key: string) => executions.filter((e) => e.workflow === workflow && e.key === key)

t.test('an unordered run keeps its earlier results past DEDUP_TTL while a step waits for an operator', async (t) => {
  failures.set('unordered-pair/10', 1)
  await service.post({ data: [change('pairs', 10)] })
  const queue = service.queue('unordered-pair')
  await waitFor(async () => (await queue.getJobCounts('failed')).failed === 1, 5_000, 'the second step failed')
  await pastDedup()
  const [failed] = await queue.getJobs(['failed'])
  await retryStep(queue, failed!.id!)
  await waitFor(async () => await queue.getJobState(failed!.id!) === 'completed', 5_000, 'the retried step')
  const second = ran('unordered-pair', '10').filter((e) => e.step === 'second')
  t.same(second.map((e) => e.results), [{ first: { n: 1 } }, { first: { n: 1 } }], 'the retry still sees the first step\'s result')
  t.same((await queue.getJob(failed!.id!))!.returnvalue, { sum: 2 })
})

t.test('a change redelivered after its dedup mark expired does not join its row twice', async (t) => {
  hold('ledger-apply/20')
  await service.post({ data: [change('ledger', 20)] })
  const second = change('ledger', 20) // an insert: only the ordered ledger-apply runs for it
  t.match((await service.post({ data: [second] })).json(), { accepted: 1 })
  await waitFor(() => ran('ledger-apply', '20').length === 1, 5_000, 'the first run to start')
  const [active] = await service.queue('ledger-apply').getJobs(['active'])
  const row = active!.data.row as string
  t.equal(await service.redis.llen(keys.rowQueue(row)), 2)

  await pastDedup()
  t.equal(await service.redis.exists(keys.seen(active!.data.changeId)), 0, 'the dedup marks expired')
  const again = await service.post({ data: [second] })
  t.match(again.json(), { accepted: 0, duplicates: 1, jobs: 0 }, 'the waiting run is known: a duplicate')
  t.equal(await service.redis.llen(keys.rowQueue(row)), 2, 'still two runs in the row')

  release('ledger-apply/20')
  await waitFor(async () => await service.redis.exists(keys.rowQueue(row)) === 0, 5_000, 'the row to empty')
  t.same(ran('ledger-apply', '20').map((e) => e.step), ['apply', 'confirm', 'apply', 'confirm'], 'each run once')
})

t.test('a head whose job already completed is finished, even without its record', async (t) => {
  await service.post({ data: [change('ledger_state', 30, 'update')] })
  await waitFor(() => ran('ledger-sync', '30').length === 1, 5_000, 'the first run')
  await waitFor(async () => ((await service.queue('ledger-sync').getJobCounts('completed')).completed ?? 0) > 0, 5_000, 'its job completed')
  const [done] = await service.queue('ledger-sync').getJobs(['completed'])
  const row = done!.data.row as string
  await waitFor(async () => await service.redis.exists(keys.rowQueue(row)) === 0, 5_000, 'the row to empty')
  // The state an expired record left behind: a head entry whose job is completed, and a run behind it.
  await service.redis.rpush(keys.rowQueue(row), `ledger-sync/${done!.data.run}/${done!.id}`)
  await service.redis.del(keys.run(done!.data.run))
  await service.post({ data: [change('ledger_state', 30, 'update')] })
  t.equal(await service.redis.llen(keys.rowQueue(row)), 2, 'the new run waits behind it')
  t.equal(await reconcileRow(redis, keys, row, 60_000), 'finished', 'judged by its job: completed')
  await waitFor(() => ran('ledger-sync', '30').length === 2, 5_000, 'the next run started')
})

t.test('runs of a row keyed by a workflow start in commit order, whatever the order in the batch', async (t) => {
  const entry = (id: number, at: number) => change('ledger_entries', id, 'insert', at, { account: 'acct-40' })
  await service.post({ data: [entry(41, 1_100_010), entry(42, 1_100_005), entry(43, 1_100_007)] })
  await waitFor(() => executions.filter((e) => e.workflow === 'ledger-by-account').length === 3, 5_000, 'the three runs')
  t.same(executions.filter((e) => e.workflow === 'ledger-by-account').map((e) => e.key), ['42', '43', '41'], 'lsn 005, 007, 010')
})

t.test('a newer change no workflow wanted still makes an older one arriving later late', async (t) => {
  // ledger-sync (late: 'skip') runs on updates of ledger_state; inserts start nothing.
  t.match((await service.post({ data: [change('ledger_state', 90, 'insert', 3_000_010)] })).json(), { unmatched: 1 })
  t.match((await service.post({ data: [change('ledger_state', 90, 'update', 3_000_005)] })).json(), { accepted: 1 })
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.same(ran('ledger-sync', '90'), [], 'the older update was skipped as late')
  t.match((await service.post({ data: [change('ledger_state', 90, 'update', 3_000_020)] })).json(), { accepted: 1 })
  await waitFor(() => ran('ledger-sync', '90').length === 1, 5_000, 'a newer update runs')
})

t.test('the quarantine is bounded: past QUARANTINE_LIMIT a batch with invalid messages is refused whole', async (t) => {
  const small = await startService({ env: { QUARANTINE_LIMIT: '2', MAX_BATCH_MESSAGES: '2', REDIS_CHECK_INTERVAL: '100ms' } })
  t.teardown(() => small.close())
  const invalids = [1, 2, 3].map((n) => ({ ...change('ledger', 50 + n), action: `bogus-${n}` }))
  const invalid = (n: number) => invalids[n - 1]!
  t.match((await small.post({ data: [invalid(1), invalid(2)] })).json(), { quarantined: 2 })
  t.match((await small.post({ data: [invalid(1)] })).json(), { quarantined: 1 }, 'one already kept: the quarantine does not grow')

  const valid = change('ledger', 60)
  const refused = await small.post({ data: [valid, invalid(3)] })
  t.equal(refused.statusCode, 422)
  t.match(refused.json(), { code: 'CF_QUARANTINE_FULL', messages: [{ index: 1 }] })
  t.equal(await small.redis.keys(`{${small.config.REDIS_PREFIX}}:_cf:s:*`).then((found) => found.length), 0,
    'nothing of the refused batch was written (its valid change neither)')
  t.match((await small.post({ data: [valid] })).json(), { accepted: 1 }, 'valid batches still flow')

  const quarantine = small.queue('quarantine')
  await waitFor(async () => (await quarantine.getJobCounts('failed')).failed === 2, 5_000, 'both kept')
  const readyz = () => small.web.app.inject({ method: 'GET', url: '/readyz' })
  await waitFor(async () => (await readyz()).json().warnings !== undefined, 5_000, 'readiness to say why')
  const ready = await readyz()
  t.equal(ready.statusCode, 200, 'still ready: valid batches flow')
  t.match(ready.json(), { status: 'ready', warnings: [/^quarantine full: 2 of 2 messages \(QUARANTINE_LIMIT\)/] })
  const [kept] = await quarantine.getJobs(['failed'])
  await kept!.remove() // an operator drops one
  t.match((await small.post({ data: [invalid(3)] })).json(), { quarantined: 1 }, 'room again')
  await kept!.remove().catch(() => {})
  await (await quarantine.getJobs(['failed', 'waiting', 'active'])).at(0)?.remove().catch(() => {})
  await waitFor(async () => (await readyz()).json().warnings === undefined, 5_000, 'the warning to clear')
})

t.test('a batch larger than one script call, refused because the quarantine is full, writes nothing', async (t) => {
  const small = await startService({ workers: false, env: { QUARANTINE_LIMIT: '400', MAX_BATCH_MESSAGES: '400' } })
  t.teardown(() => small.close())
  const junk = (n: number) => ({ not: 'a sequin message', n })
  t.match((await small.post({ data: Array.from({ length: 400 }, (_, i) => junk(i)) })).json(), { quarantined: 400 })
  const valid = Array.from({ length: 300 }, (_, i) => change('content', 95_000 + i))
  const refused = await small.post({ data: [junk(400), ...valid] })
  t.equal(refused.statusCode, 422)
  t.match(refused.json(), { code: 'CF_QUARANTINE_FULL', message: /holds 400 messages/ })
  t.same(await small.redis.keys(`{${small.config.REDIS_PREFIX}}:_cf:s:*`), [], 'no change of the refused batch was marked seen')
  t.equal(await small.queue('content-echo').count(), 0, 'and no job of it was added, in any of its script calls')
})
