import t from 'tap'
import { JOBS_PER_SCRIPT } from '../../src/ingest/commit.ts'
import { Keyspace } from '../../src/keys.ts'
import { executions, reset } from '../fixtures/jobs/_recorder.ts'
import { fixture, fixtureMessages, startService, waitFor, withIdentity } from '../helpers/service.ts'

const service = await startService({ env: { KEEP_COMPLETED: '0' } })
const keys = new Keyspace(service.config.REDIS_PREFIX)
t.teardown(() => service.close())
t.beforeEach(() => reset())

const paidMessage = fixtureMessages('batch-orders-update-paid')[0]!
const countOf = (workflow: string, step: string) =>
  executions.filter((e) => e.workflow === workflow && e.step === step).length

/** `n` distinct paid-order changes for distinct orders, starting at commit `lsn`. */
function paidChanges (n: number, lsn: number) {
  return Array.from({ length: n }, (_, i) => {
    const message = withIdentity(paidMessage, lsn + i) as { record: Record<string, unknown>, metadata: Record<string, unknown> }
    message.record.id = 50_000 + lsn + i
    message.metadata.record_pks = [String(message.record.id)]
    return message
  })
}

t.test('every fixture is accepted with the right counts and starts the right workflows', async (t) => {
  const expected: Record<string, { accepted: number, duplicates?: number, unmatched: number, jobs: number, runs: string[] }> = {
    'batch-orders-insert': { accepted: 0, unmatched: 2, jobs: 0, runs: [] },
    'batch-orders-update-paid': { accepted: 1, unmatched: 0, jobs: 1, runs: ['order-flow'] },
    'batch-orders-update-default-replica-identity': { accepted: 0, unmatched: 1, jobs: 0, runs: [] },
    'batch-users-delete': { accepted: 0, unmatched: 1, jobs: 0, runs: [] },
    'batch-users-delete-default-replica-identity': { accepted: 0, unmatched: 1, jobs: 0, runs: [] },
    'batch-orders-backfill-read': { accepted: 3, unmatched: 0, jobs: 3, runs: ['backfill-sync', 'backfill-sync', 'backfill-sync'] },
    // Its orders change is the one batch-orders-update-paid delivered: a duplicate.
    'batch-mixed-orders-users': { accepted: 1, duplicates: 1, unmatched: 2, jobs: 1, runs: ['user-signup'] },
    'batch-order-items-composite-pk-update': { accepted: 1, unmatched: 0, jobs: 1, runs: ['item-touched'] },
  }
  for (const [name, want] of Object.entries(expected)) {
    reset()
    const response = await service.post(fixture(name))
    t.equal(response.statusCode, 200, name)
    t.same(response.json(), { accepted: want.accepted, duplicates: want.duplicates ?? 0, unmatched: want.unmatched, quarantined: 0, jobs: want.jobs }, name)
    const firstSteps = () => executions.filter((e) => ['one', 'greet', 'sync', 'touch'].includes(e.step))
    await waitFor(() => firstSteps().length === want.runs.length, 5_000, `${name} runs`)
    // Every run finished, so the next fixture's runs start at once instead of queueing behind them.
    await waitFor(async () => (await service.redis.keys(keys.rowQueue('*'))).length === 0, 5_000, `${name}: rows idle`)
    t.same(firstSteps().map((e) => e.workflow).sort(), want.runs, `${name}: workflows started`)
  }
  // single-orders-update-paid is the same change as batch-orders-update-paid: a duplicate.
  const single = await service.post(fixture('single-orders-update-paid'))
  t.same(single.json(), { accepted: 0, duplicates: 1, unmatched: 0, quarantined: 0, jobs: 0 })
  const composite = executions.find((e) => e.workflow === 'item-touched')
  t.equal(composite?.key, '1001,2', 'composite primary keys reach the step')
})

t.test('a redelivered batch, and the same changes re-batched, run each step once', async (t) => {
  const changes = paidChanges(6, 1_000)
  const first = await service.post({ data: changes.slice(0, 4) })
  t.same(first.json(), { accepted: 4, duplicates: 0, unmatched: 0, quarantined: 0, jobs: 4 })
  const again = await service.post({ data: changes.slice(0, 4) })
  t.same(again.json(), { accepted: 0, duplicates: 4, unmatched: 0, quarantined: 0, jobs: 0 })
  // Sequin re-batches retried messages with new companions.
  const rebatched = await service.post({ data: [changes[3], changes[4], changes[1], changes[5]] })
  t.same(rebatched.json(), { accepted: 2, duplicates: 2, unmatched: 0, quarantined: 0, jobs: 2 })
  await waitFor(() => countOf('order-flow', 'three') === 6, 10_000, 'six runs')
  t.equal(countOf('order-flow', 'one'), 6)
  t.equal(countOf('order-flow', 'two'), 6)
})

t.test('a duplicate is recognised after its completed jobs were removed by retention', async (t) => {
  const [change] = paidChanges(1, 2_000)
  await service.post({ data: [change] })
  await waitFor(() => countOf('order-flow', 'three') === 1, 10_000, 'the run')
  const queue = service.queue('order-flow')
  await waitFor(async () => (await queue.getJobCounts('completed', 'active', 'wait')).completed === 0 &&
    (await queue.getJobCounts('active')).active === 0, 5_000, 'retention to remove completed jobs')
  t.equal((await queue.getJobs(['completed', 'wait', 'active', 'delayed'])).length, 0, 'no job of the run is left')
  const redelivered = await service.post({ data: [change] })
  t.same(redelivered.json(), { accepted: 0, duplicates: 1, unmatched: 0, quarantined: 0, jobs: 0 })
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(countOf('order-flow', 'one'), 1, 'the first step did not run again')
})

t.test('concurrent deliveries of the same batch run each step once', async (t) => {
  const batch = { data: paidChanges(20, 3_000) }
  const responses = await Promise.all(Array.from({ length: 8 }, () => service.post(batch)))
  t.ok(responses.every((r) => r.statusCode === 200))
  const accepted = responses.reduce((sum, r) => sum + r.json().accepted, 0)
  const duplicates = responses.reduce((sum, r) => sum + r.json().duplicates, 0)
  t.equal(accepted, 20, 'each change accepted once across all deliveries')
  t.equal(duplicates, 20 * 7)
  await waitFor(() => countOf('order-flow', 'three') === 20, 15_000, 'twenty runs')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(countOf('order-flow', 'one'), 20)
})

t.test('after a failure part-way through an enqueue, redelivery completes it with nothing doubled', async (t) => {
  // A key of the wrong type makes Redis fail the script between two changes.
  const [a, b] = paidChanges(2, 4_000)
  const users = withIdentity(fixtureMessages('batch-mixed-orders-users')[2]!, 4_100)
  const waitKey = `{${service.config.REDIS_PREFIX}}:user-signup:wait`
  await service.redis.set(waitKey, 'not a list')
  const failed = await service.post({ data: [a, users, b] })
  t.equal(failed.statusCode, 500, 'an unexpected Redis error is a failure Sequin retries')
  t.notMatch(failed.body, 'WRONGTYPE', 'internals are not echoed')
  await service.redis.del(waitKey)

  t.equal(await service.queue('order-flow').count(), 0, 'the refused batch wrote no job')

  const retried = await service.post({ data: [b, users, a] })
  t.equal(retried.statusCode, 200)
  t.same(retried.json(), { accepted: 3, duplicates: 0, unmatched: 0, quarantined: 0, jobs: 3 })
  await waitFor(() => countOf('order-flow', 'three') === 2 && countOf('user-signup', 'greet') === 1, 10_000, 'all runs')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(countOf('order-flow', 'one'), 2)
  t.equal(countOf('user-signup', 'greet'), 1)
})

t.test('a batch larger than one script call is written in parts: each change once, a redelivery all duplicates', async (t) => {
  const user = fixtureMessages('batch-mixed-orders-users')[2]!
  const data = Array.from({ length: 600 }, (_, i) => {
    const message = withIdentity(user, 6_000 + i) as { record: Record<string, unknown>, metadata: Record<string, unknown> }
    message.metadata.record_pks = [String(80_000 + i)]
    return message
  })
  t.ok(data.length > JOBS_PER_SCRIPT * 2, 'three script calls at least')
  t.same((await service.post({ data })).json(), { accepted: 600, duplicates: 0, unmatched: 0, quarantined: 0, jobs: 600 })
  t.same((await service.post({ data: data.reverse() })).json(), { accepted: 0, duplicates: 600, unmatched: 0, quarantined: 0, jobs: 0 })
  await waitFor(() => countOf('user-signup', 'greet') === 600, 20_000, 'every run')
})

t.test('the same change from two sinks on one database starts its workflows once', async (t) => {
  const [change] = paidChanges(1, 5_000) as Array<{ metadata: Record<string, unknown> }>
  const otherSink = structuredClone(change!)
  otherSink.metadata.consumer = { id: 'another-sink', name: 'second', annotations: {} }
  t.match((await service.post({ data: [change] })).json(), { accepted: 1 })
  t.match((await service.post({ data: [otherSink] })).json(), { accepted: 0, duplicates: 1 })
})

t.test('updates with empty "changes" log one warning per table naming the fix', async (t) => {
  const logs: string[] = []
  const logged = await startService({ workers: false, logs })
  t.teardown(() => logged.close())
  const [update] = fixtureMessages('batch-orders-update-default-replica-identity')
  for (const lsn of [6_000, 6_001, 6_002]) await logged.post({ data: [withIdentity(update!, lsn)] })
  const warnings = logs.filter((line) => line.includes('REPLICA IDENTITY FULL'))
  t.equal(warnings.length, 1)
  t.match(warnings[0], 'ALTER TABLE public.orders REPLICA IDENTITY FULL')
  t.notMatch(logs.join('\n'), 'Bearer', 'the token is not logged')
})
