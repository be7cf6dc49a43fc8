import t from 'tap'
import { executions, failures, hold, release, reset } from '../fixtures/jobs/_recorder.ts'
import { blockedRows, discardRun, retryStep } from '../../src/runs/rows.ts'
import { Keyspace } from '../../src/keys.ts'
import { withScripts } from '../../src/redis/scripts.ts'
import { JOBS_PER_SCRIPT } from '../../src/ingest/commit.ts'
import { fixtureMessages, startService, waitFor, withIdentity } from '../helpers/service.ts'

const service = await startService({ env: { RECONCILE_INTERVAL: '200ms' } })
t.teardown(() => service.close())
t.beforeEach(() => reset())
const keys = new Keyspace(service.config.REDIS_PREFIX)
const redis = withScripts(service.redis)

const template = fixtureMessages('batch-orders-update-paid')[0]!
let lsn = 100_000
/** The next change of `table` row `id`, in commit order unless `at` says otherwise. */
function change (table: string, id: number, action = 'update', at = lsn++, extra: Record<string, unknown> = {}) {
  const message = withIdentity(template, at) as Record<string, unknown> & { record: Record<string, unknown>, metadata: Record<string, unknown> }
  message.action = action
  message.metadata.table_name = table
  message.metadata.record_pks = [String(id)]
  message.record = { id, ...extra }
  return message
}
const ran = (workflow: string, key: string) => executions.filter((e) => e.workflow === workflow && e.key === key)
const settle = () => new Promise((resolve) => setTimeout(resolve, 150))

t.test("a row's next run starts only after its earlier run finished; other rows do not wait", async (t) => {
  hold('ledger-apply/1')
  const first = change('ledger', 1, 'insert')
  await service.post({ data: [first, change('ledger', 2, 'insert')] })
  const second = change('ledger', 1)
  await service.post({ data: [second] })
  await waitFor(() => ran('ledger-apply', '2').length === 2, 5_000, 'row 2, not held, to finish both steps')
  await settle()
  t.same(ran('ledger-apply', '1').map((e) => e.step), ['apply'], 'row 1 is at its first run, first step')
  const [active] = await service.queue('ledger-apply').getJobs(['active'])
  t.equal(await service.redis.llen(keys.rowQueue(active!.data.row)), 2, 'the second run waits in the row queue')

  release('ledger-apply/1')
  await waitFor(() => ran('ledger-apply', '1').length === 4, 5_000, 'both runs of row 1')
  const order = ran('ledger-apply', '1').map((e) => `${e.step}@${e.lsn}`)
  const [a, b] = [first.metadata.commit_lsn, second.metadata.commit_lsn]
  t.same(order, [`apply@${a}`, `confirm@${a}`, `apply@${b}`, `confirm@${b}`], 'run 1 (both steps) before run 2')
})

t.test('an unordered workflow runs at once, beside the row it belongs to', async (t) => {
  hold('ledger-apply/3')
  await service.post({ data: [change('ledger', 3)] })
  // Both start, whichever first: the audit finishes while the ordered run is held at its second step.
  await waitFor(() => ran('ledger-audit', '3').length === 1 && ran('ledger-apply', '3').length === 1, 5_000, 'the unordered audit, and the ordered run to its hold')
  t.same(ran('ledger-apply', '3').map((e) => e.step), ['apply'], 'while the ordered run is still held')
  release('ledger-apply/3')
  await waitFor(() => ran('ledger-apply', '3').length === 2, 5_000, 'the ordered run')
})

t.test('a failed run blocks its row until retried; a discarded run lets the row move on', async (t) => {
  failures.set('ledger-apply/4', 1)
  const first = change('ledger', 4, 'insert')
  await service.post({ data: [first] })
  await service.post({ data: [change('ledger', 4)] })
  await service.post({ data: [change('ledger', 5, 'insert')] })
  const queue = service.queue('ledger-apply')
  await waitFor(async () => (await queue.getJobCounts('failed')).failed === 1, 5_000, 'the failed step')
  await waitFor(() => ran('ledger-apply', '5').length === 2, 5_000, 'the unrelated row')
  await settle()
  t.equal(ran('ledger-apply', '4').length, 1, 'row 4 waits behind its failed run')

  const blocked = await blockedRows(service.redis, keys, [queue])
  t.equal(blocked.length, 1)
  t.match(blocked[0], { workflow: 'ledger-apply', step: 'apply', table: 'public.ledger', key: ['4'], error: 'refused (0 more)', waiting: 1 })

  await retryStep(queue, blocked[0]!.jobId)
  await waitFor(() => ran('ledger-apply', '4').length === 5, 5_000, 'the retried run, then the next one')
  t.same(ran('ledger-apply', '4').map((e) => `${e.step}#${e.attempt}`), ['apply#1', 'apply#1', 'confirm#1', 'apply#1', 'confirm#1'], 'the retried step starts a fresh set of attempts')
  t.same(await blockedRows(service.redis, keys, [queue]), [])

  // Now a run that is given up.
  failures.set('ledger-apply/6', 1)
  await service.post({ data: [change('ledger', 6, 'insert')] })
  await service.post({ data: [change('ledger', 6)] })
  await waitFor(async () => (await blockedRows(service.redis, keys, [queue])).length === 1, 5_000, 'row 6 blocked')
  const [row6] = await blockedRows(service.redis, keys, [queue])
  const failedJob = (await queue.getJob(row6!.jobId))!
  t.equal(await discardRun(redis, keys, queue, row6!.jobId, 60_000), 'discarded')
  await waitFor(() => ran('ledger-apply', '6').length === 3, 5_000, 'the next run of row 6')
  t.same(ran('ledger-apply', '6').map((e) => e.step), ['apply', 'apply', 'confirm'])
  t.equal(await queue.getJob(row6!.jobId), undefined, 'the discarded job is gone')
  t.same(Object.keys(await service.redis.hgetall(keys.run(row6!.jobId.split('.')[1]!))), ['discarded'], 'its run is marked discarded')

  // A copy of a job of the discarded run (the dashboard's add, with the job's data) does not run.
  const copy = await queue.add(failedJob.name, failedJob.data, { jobId: `copy-${failedJob.id!}` })
  await waitFor(async () => (await copy.getState()) === 'completed', 5_000, 'the copied job')
  t.equal(ran('ledger-apply', '6').length, 3, 'its step did not run again')
  // Re-added under its own id, it is a first start: its step runs once more, but the run stays
  // given up: nothing follows it and the row does not wait on it.
  const revived = await queue.add(failedJob.name, failedJob.data, { jobId: failedJob.id })
  await waitFor(async () => (await revived.getState()) === 'completed', 5_000, 'the revived job')
  await settle()
  t.same(ran('ledger-apply', '6').map((e) => e.step), ['apply', 'apply', 'confirm', 'apply'], 'its first step once more, nothing after it')
  t.same(Object.keys(await service.redis.hgetall(keys.run(row6!.jobId.split('.')[1]!))), ['discarded'], 'its run is still given up')
  t.same(await blockedRows(service.redis, keys, [queue]), [])
})

t.test('a step started again reads its run: a completed step retried from the dashboard is not executed again', async (t) => {
  await service.post({ data: [change('ledger', 80, 'insert')] })
  await waitFor(() => ran('ledger-apply', '80').length === 2, 5_000, 'the run')
  const queue = service.queue('ledger-apply')
  const [apply] = (await queue.getJobs(['completed'])).filter((job) => job.data.key[0] === '80' && job.name === 'apply')
  t.equal(apply!.attemptsStarted, 1)
  await apply!.retry('completed')
  await waitFor(async () => (await apply!.getState()) === 'completed', 5_000, 'the retried job')
  await settle()
  t.same(ran('ledger-apply', '80').map((e) => e.step), ['apply', 'confirm'], 'neither step ran again')
})

t.test('removing a failed job (as the dashboard does) unblocks its row within a reconcile interval', async (t) => {
  failures.set('ledger-apply/7', 1)
  await service.post({ data: [change('ledger', 7, 'insert')] })
  await service.post({ data: [change('ledger', 7)] })
  const queue = service.queue('ledger-apply')
  await waitFor(async () => (await blockedRows(service.redis, keys, [queue])).length === 1, 5_000, 'row 7 blocked')
  const [row7] = await blockedRows(service.redis, keys, [queue])
  await (await queue.getJob(row7!.jobId))!.remove()
  await waitFor(() => ran('ledger-apply', '7').length === 3, 5_000, 'the reconciler to start the next run')
  t.equal(await service.redis.exists(keys.rowQueue(row7!.row)), 0, 'the row queue is empty again')
})

t.test('late changes run marked as late, or are skipped when the workflow says so', async (t) => {
  await service.post({ data: [change('ledger', 8, 'update', 500_002), change('ledger_state', 8, 'update', 500_012)] })
  await waitFor(() => ran('ledger-apply', '8').length === 2 && ran('ledger-sync', '8').length === 1, 5_000, 'the newer changes')
  const response = await service.post({ data: [change('ledger', 8, 'update', 500_001), change('ledger_state', 8, 'update', 500_011)] })
  t.same(response.json(), { accepted: 2, duplicates: 0, unmatched: 0, quarantined: 0, jobs: 2 }, 'the late ledger run and its unordered audit')
  await waitFor(() => ran('ledger-apply', '8').length === 4, 5_000, 'the late run')
  await settle()
  t.same(ran('ledger-apply', '8').map((e) => e.late), [false, false, true, true])
  t.same(ran('ledger-audit', '8').map((e) => e.late), [false, true])
  t.equal(ran('ledger-sync', '8').length, 1, 'the late state sync was skipped')
  t.equal(ran('ledger-sync', '8')[0]!.lsn, 500_012)
  // The steps learnt it from their jobs: the ingest script marked the late run's first job.
  const jobs = (await service.queue('ledger-apply').getJobs(['completed'])).filter((job) => job.data.key[0] === '8')
  t.same(jobs.map((job) => `${job.name}:${String(job.data.late)}`).sort(), ['apply:true', 'apply:undefined', 'confirm:true', 'confirm:undefined'])
})

t.test('in a batch written in several script calls, a later unmatched change does not make an earlier one late', async (t) => {
  // Row 9's insert lands in the second script call; its delete (no workflow wants it) is newer.
  const filler = Array.from({ length: JOBS_PER_SCRIPT + 50 }, (_, i) => change('ledger', 20_000 + i, 'insert'))
  const insert = change('ledger', 9, 'insert')
  const response = await service.post({ data: [...filler, insert, change('ledger', 9, 'delete')] })
  t.match(response.json(), { accepted: filler.length + 1, unmatched: 1 })
  await waitFor(() => ran('ledger-apply', '9').length === 2, 20_000, "row 9's run")
  t.same(ran('ledger-apply', '9').map((e) => e.late), [false, false], 'not late: the delete came after it')
})

t.test('a custom key row is not the primary-key row with the same values', async (t) => {
  // Entry 5 of account 7, then entry 7 (account 3) committed earlier but delivered later: entry
  // 7 is not late for its own primary key, whatever account 7's row has seen.
  const entry = (id: number, account: string, at: number) => change('ledger_entries', id, 'insert', at, { account })
  await service.post({ data: [entry(5, '7', 700_200)] })
  await service.post({ data: [entry(7, '3', 700_150)] })
  await waitFor(() => ran('ledger-entry-sync', '7').length === 1, 5_000, 'entry 7 synced')
  t.same(ran('ledger-entry-sync', '7').map((e) => e.late), [false])
})

t.test('a custom key orders rows of a table without a usable primary key', async (t) => {
  hold('ledger-by-account/1')
  const entry = (id: number, account: string) => {
    const message = change('ledger_entries', id, 'insert', lsn++, { account })
    message.metadata.record_pks = []
    return message
  }
  await service.post({ data: [entry(1, 'acct-a'), entry(2, 'acct-b')] })
  await service.post({ data: [entry(3, 'acct-a')] })
  await waitFor(() => ran('ledger-by-account', '2').length === 1, 5_000, 'the other account')
  await settle()
  t.equal(ran('ledger-by-account', '3').length, 0, 'entry 3 waits for entry 1 of the same account')
  release('ledger-by-account/1')
  await waitFor(() => ran('ledger-by-account', '3').length === 1, 5_000, 'entry 3')
})

t.test('a redelivered change does not enter its row twice', async (t) => {
  hold('ledger-apply/9')
  const first = change('ledger', 9, 'insert')
  const second = change('ledger', 9)
  await service.post({ data: [first] })
  await service.post({ data: [second] })
  await service.post({ data: [second] })
  await service.post({ data: [first, second] })
  const active = await service.queue('ledger-apply').getJobs(['active', 'wait'])
  const row = active.map((job) => job.data.row).find(Boolean)
  t.equal(await service.redis.llen(keys.rowQueue(row)), 2)
  release('ledger-apply/9')
  await waitFor(() => ran('ledger-apply', '9').length === 4, 5_000, 'both runs')
  await settle()
  t.equal(ran('ledger-apply', '9').length, 4)
})
