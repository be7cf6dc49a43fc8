import t from 'tap'
import { Keyspace } from '../../src/keys.ts'
import { executions, failures, reset } from '../fixtures/jobs/_recorder.ts'
import { cliOf, fixtureMessages, startService, waitFor, withIdentity } from '../helpers/service.ts'

// An unordered run given up by an operator is never done and has no row to reconcile: its record
// (with the earlier steps' results) is marked discarded and expires, rather than staying forever.
const service = await startService()
t.teardown(() => service.close())
t.beforeEach(() => reset())
const keys = new Keyspace(service.config.REDIS_PREFIX)

const cli = cliOf(service)

t.test('an unordered run given up by the operator does not keep its record forever', async (t) => {
  const message = withIdentity(fixtureMessages('batch-orders-insert')[0]!, 6_600_001) as Record<string, unknown> & { record: Record<string, unknown>, metadata: Record<string, unknown> }
  message.metadata.table_name = 'pairs'
  message.metadata.record_pks = ['901']
  message.record = { id: 901 }
  failures.set('unordered-pair/901', 1)
  t.match((await service.post({ data: [message] })).json(), { accepted: 1 })

  const queue = service.queue('unordered-pair')
  await waitFor(async () => (await queue.getJobCounts('failed')).failed === 1, 5_000, 'the second step failed for good')
  const [failed] = await queue.getJobs(['failed'])
  const run = (failed!.data as { run: string }).run
  t.ok(executions.some((e) => e.step === 'second'))

  const discarded = await cli('discard', 'unordered-pair', failed!.id!)
  t.equal(discarded.code, 0, discarded.stderr)

  const ttl = await service.redis.pttl(keys.run(run))
  t.not(ttl, -1, `the given-up run's record expires (PTTL ${ttl}; -1 means it never does)`)
})
