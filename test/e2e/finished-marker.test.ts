import t from 'tap'
import { startRedisServer } from '../../scripts/lib/redis-server.ts'
import { executions, hold, release, reset } from '../fixtures/jobs/_recorder.ts'
import { waitFor } from '../helpers/service.ts'
import { message, sleep, startStack, uniquePrefix } from '../helpers/stack.ts'

// A finished run keeps a marker in its change's dedup hash, which then lives at least DEDUP_TTL
// from the run's end: a redelivery shortly after a run that finished late in the horizon is still
// a duplicate (completed jobs are trimmed by KEEP_COMPLETED long before on a busy queue).
t.setTimeout(60_000)

t.test('a run that finished is remembered for DEDUP_TTL after it finished', async (t) => {
  reset()
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const stack = await startStack({
    REDIS_URL: server.url,
    REDIS_PREFIX: uniquePrefix(),
    DEDUP_TTL: '3s',
    KEEP_COMPLETED: '0', // a busy queue: completed jobs trimmed at once
    KEEP_COMPLETED_AGE: '1s',
  }, { redisUrl: server.url })
  t.teardown(() => stack.close())

  const change = message('ledger', 77, 'insert', 7_700_001)
  hold('ledger-apply/77') // the run is slow (or its row was busy): it finishes late
  t.match((await stack.post({ data: [change] })).json(), { accepted: 1 })
  await sleep(2_500)
  release('ledger-apply/77')
  await waitFor(() => executions.filter((e) => e.step === 'confirm').length === 1, 5_000, 'the run to finish')
  const finishedAt = Date.now()

  // Sequin redelivers the change (a lost acknowledgement), 1 s after its run finished: well
  // within DEDUP_TTL (3 s) of the finish, but past the horizon counted from its acceptance.
  await sleep(1_000)
  const again = await stack.post({ data: [change] })
  t.ok(Date.now() - finishedAt < 3_000, 'redelivered within DEDUP_TTL of the run\'s end')
  t.match(again.json(), { accepted: 0, duplicates: 1, jobs: 0 }, 'recognised by its finished run: a duplicate')
  await sleep(800)
  t.same(executions.map((e) => e.step), ['apply', 'confirm'], 'the workflow ran once')
})
