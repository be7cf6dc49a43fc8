import t from 'tap'
import { executions, failures, reset } from '../fixtures/jobs/_recorder.ts'
import { fixtureMessages, startService, waitFor, withIdentity } from '../helpers/service.ts'
import { CARRIED_RESULTS_MAX_BYTES } from '../../src/ingest/job-data.ts'
import { stepJobId } from '../../src/ingest/identity.ts'
import { Keyspace } from '../../src/keys.ts'

const service = await startService()
t.teardown(() => service.close())
const keys = new Keyspace(service.config.REDIS_PREFIX)
t.beforeEach(() => reset())

const insertTemplate = fixtureMessages('batch-orders-insert')[0]!

/** An insert into `table` for row `id`: a fresh change each call. */
let lsn = 10_000
function insertInto (table: string, id: number) {
  const message = withIdentity(insertTemplate, lsn++) as { record: Record<string, unknown>, metadata: Record<string, unknown> }
  message.metadata.table_name = table
  message.metadata.record_pks = [String(id)]
  message.record = { id }
  return message
}

t.test('the steps of a run execute in order, each seeing the results of the earlier ones', async (t) => {
  const paid = withIdentity(fixtureMessages('batch-orders-update-paid')[0]!, lsn++)
  t.match((await service.post({ data: [paid] })).json(), { accepted: 1, jobs: 1 })
  await waitFor(() => executions.length === 3, 5_000, 'three steps')
  t.same(executions.map((e) => e.step), ['one', 'two', 'three'])
  t.same(executions[0]!.results, {})
  t.same(executions[1]!.results, { one: { n: 1 } })
  t.same(executions[2]!.results, { one: { n: 1 }, two: { n: 2 } })
  const keys = executions.map((e) => e.idempotencyKey)
  t.equal(new Set(keys).size, 3, 'an idempotency key per step')
  t.ok(keys.every((key) => key.startsWith('changeflow.order-flow.')))

  const queue = service.queue('order-flow')
  await waitFor(async () => (await queue.getJobCounts('completed')).completed === 3, 5_000, 'the three jobs completed')
  const completed = await queue.getJobs(['completed'])
  t.same(completed.map((job) => job.name).sort(), ['one', 'three', 'two'], 'each step was its own BullMQ job')
  t.ok(completed.every((job) => !String(job.id).includes(':') && !/^\d+$/.test(String(job.id))))
})

t.test('earlier results travel with the next step while small, and are read from the run when large', async (t) => {
  const queue = service.queue('order-flow')
  const paid = (id: number) => {
    const message = withIdentity(fixtureMessages('batch-orders-update-paid')[0]!, lsn++) as { record: Record<string, unknown>, metadata: Record<string, unknown> }
    message.record.id = id
    message.metadata.record_pks = [String(id)]
    return message
  }
  const small = paid(7001)
  const large = paid(7002)
  large.record.pad = 'x'.repeat(CARRIED_RESULTS_MAX_BYTES)
  t.match((await service.post({ data: [small, large] })).json(), { accepted: 2, jobs: 2 })
  await waitFor(() => executions.length === 6, 5_000, 'both runs')
  const of = (id: string) => executions.filter((e) => e.key === id)
  t.same(of('7001').map((e) => e.results), [{}, { one: { n: 1 } }, { one: { n: 1 }, two: { n: 2 } }])
  t.same(of('7002').map((e) => e.results), [{}, { one: { n: 1, pad: large.record.pad } }, { one: { n: 1, pad: large.record.pad }, two: { n: 2 } }], 'the large result, read from the run')
  const twos = (await queue.getJobs(['completed'])).filter((job) => job.name === 'two' && ['7001', '7002'].includes(job.data.key[0]))
  const carried = Object.fromEntries(twos.map((job) => [job.data.key[0], job.data.results]))
  t.same(carried, { 7001: { one: { n: 1 } }, 7002: undefined }, 'carried in the small run\'s job, not in the large one\'s')
})

/** An order-flow run for row `id`, its queue paused: the run's first job waits, not yet started. */
async function pausedOrderRun (id: number) {
  const queue = service.queue('order-flow')
  await queue.pause()
  const message = withIdentity(fixtureMessages('batch-orders-update-paid')[0]!, lsn++) as { record: Record<string, unknown>, metadata: Record<string, unknown> }
  message.record.id = id
  message.metadata.record_pks = [String(id)]
  await service.post({ data: [message] })
  const [one] = (await queue.getJobs(['wait'])).filter((job) => job.data.key[0] === String(id))
  return { queue, one }
}

t.test('a job a worker of the previous release added (a rolling deploy) carries stale results: its step reads the run', async (t) => {
  // The previous release's runner made the next job's data by spreading the job's own, so the
  // `results` of a job of this release went on unchanged, without the step that worker ran.
  const { queue, one } = await pausedOrderRun(7101)
  t.same(one!.data.results, {}, 'a job of this release')
  // What the old worker left after running steps one and two of it.
  const { run } = one!.data
  const three = stepJobId(run, 'three')
  await service.redis.hset(keys.run(run), 'r0', JSON.stringify({ n: 1 }), 'r1', JSON.stringify({ n: 2 }), 'cj', three)
  await queue.add('three', { ...one!.data, step: 'three', stepIndex: 2 }, { jobId: three })
  await one!.remove()
  await queue.resume()
  await waitFor(() => executions.some((e) => e.key === '7101'), 5_000, 'step three')
  t.same(executions.map((e) => [e.step, e.results]), [['three', { one: { n: 1 }, two: { n: 2 } }]], 'the earlier results, read from the run')
})

t.test('a job carrying a result of its own step (made by hand) passes on the fresh one, once', async (t) => {
  const { queue, one } = await pausedOrderRun(7102)
  const two = stepJobId(one!.data.run, 'two')
  await service.redis.hset(keys.run(one!.data.run), 'r0', JSON.stringify({ n: 1 }), 'cj', two)
  await queue.add('two', { ...one!.data, step: 'two', stepIndex: 1, results: { one: { n: 1 }, two: 'stale' } }, { jobId: two })
  await one!.remove()
  await queue.resume()
  await waitFor(() => executions.some((e) => e.key === '7102' && e.step === 'three'), 5_000, 'step three')
  const three = await queue.getJob(stepJobId(one!.data.run, 'three'))
  t.same(executions.at(-1)!.results, { one: { n: 1 }, two: { n: 2 } }, 'step three sees step two\'s own result')
  t.ok(three === undefined || !/"two":"stale"/.test(JSON.stringify(three.data)), 'the stale result is not carried on')
})

t.test('a failing step is retried with backoff, then the run continues', async (t) => {
  failures.set('flaky/7', 2)
  await service.post({ data: [insertInto('flaky_things', 7)] })
  await waitFor(() => executions.some((e) => e.step === 'after'), 5_000, 'the step after the flaky one')
  t.same(executions.map((e) => [e.step, e.attempt]), [['try', 1], ['try', 2], ['try', 3], ['after', 1]])
  t.same(executions.at(-1)!.results, { try: 'ok' })
  const [job] = await service.queue('flaky').getJobs(['completed'], 0, 0)
  t.ok(job, 'the flaky job completed')
})

t.test('a step that keeps failing exhausts its attempts and stays failed with its error', async (t) => {
  failures.set('flaky/8', 10)
  await service.post({ data: [insertInto('flaky_things', 8)] })
  const queue = service.queue('flaky')
  await waitFor(async () => (await queue.getJobCounts('failed')).failed === 1, 5_000, 'the failed job')
  const [job] = await queue.getJobs(['failed'])
  t.equal(job!.attemptsMade, 4, 'all four attempts')
  t.match(job!.failedReason, 'transient failure')
  t.notOk(executions.some((e) => e.step === 'after'), 'the run stopped at the failed step')
})

t.test('a PermanentError fails the step at once and the run stops there', async (t) => {
  await service.post({ data: [insertInto('doomed_things', 1)] })
  const queue = service.queue('doomed')
  await waitFor(async () => (await queue.getJobCounts('failed')).failed === 1, 5_000, 'the failed job')
  const [job] = await queue.getJobs(['failed'])
  t.equal(job!.attemptsMade, 1, 'no retries although attempts is 5')
  t.equal(job!.failedReason, 'card declined')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(executions.map((e) => e.step), ['first'], 'the second step never ran')
})

t.test('invalid messages are quarantined with their error, the rest of the batch goes ahead', async (t) => {
  const good = insertInto('users', 77)
  const bad = { ...insertInto('users', 78), action: 'upsert' }
  const reshaped = { id: 79, email: 'x@example.com' } // a Sequin transform's output
  const response = await service.post({ data: [good, bad, reshaped] })
  t.equal(response.statusCode, 200)
  t.same(response.json(), { accepted: 1, duplicates: 0, unmatched: 0, quarantined: 2, jobs: 3 })
  await waitFor(() => executions.some((e) => e.workflow === 'user-signup'), 5_000, 'the valid change')

  const quarantine = service.queue('quarantine')
  await waitFor(async () => (await quarantine.getJobCounts('failed')).failed === 2, 5_000, 'two quarantined messages')
  const jobs = await quarantine.getJobs(['failed'])
  const byIndex = new Map(jobs.map((job) => [job.data.index, job]))
  t.match(byIndex.get(1)!.failedReason, /invalid-message: action/)
  t.same(byIndex.get(1)!.data.message, bad, 'the message is kept as it came')
  t.match(byIndex.get(2)!.failedReason, /metadata/)

  const again = await service.post({ data: [bad] })
  t.match(again.json(), { quarantined: 1 })
  t.equal((await quarantine.getJobs(['failed', 'wait', 'active'])).length, 2, 'a redelivered invalid message is kept once')
})

t.test('a quarantined message is re-driven once it is valid', async (t) => {
  const broken = insertInto('users', 90) as { metadata: Record<string, unknown> }
  delete broken.metadata.table_name
  await service.post({ data: [broken] })
  const quarantine = service.queue('quarantine')
  let job = (await quarantine.getJobs(['failed', 'wait', 'active'])).find((j) => j.data.message?.record?.id === 90)
  t.ok(job)
  await waitFor(async () => (await job!.getState()) === 'failed', 5_000, 'the quarantine attempt')

  // The operator repairs the stored message (or deploys the fix) and retries the job.
  broken.metadata.table_name = 'users'
  await job!.updateData({ ...job!.data, message: broken })
  await job!.retry('failed')
  await waitFor(() => executions.some((e) => e.workflow === 'user-signup' && e.key === '90'), 5_000, 'the re-driven change')
  job = await quarantine.getJob(job!.id!)
  t.equal(await job!.getState(), 'completed')
  t.match(job!.returnvalue, { accepted: 1, jobs: 1 })

  t.match((await service.post({ data: [broken] })).json(), { duplicates: 1 }, 'the re-driven change is deduplicated like any other')
})
