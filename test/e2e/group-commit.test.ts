import { Redis } from 'ioredis'
import t from 'tap'
import { GroupCommit } from '../../src/ingest/group-commit.ts'
import { changeId } from '../../src/ingest/identity.ts'
import { createJobOptions } from '../../src/ingest/job-options.ts'
import { planBatch } from '../../src/ingest/plan.ts'
import { Keyspace } from '../../src/keys.ts'
import { withScripts, type ScriptedRedis } from '../../src/redis/scripts.ts'
import type { SequinMetadata } from '../../src/sequin/message.ts'
import { loadWorkflows } from '../../src/workflows/load.ts'
import { startRedisServer } from '../../scripts/lib/redis-server.ts'
import { executions, reset } from '../fixtures/jobs/_recorder.ts'
import { paidOrderChange, startService, waitFor } from '../helpers/service.ts'

// Requests that arrive together are written by one script call (src/ingest/group-commit.ts),
// and each still gets exactly the answer it would have got alone.
const service = await startService({ env: { KEEP_COMPLETED: '0', MAX_BATCH_MESSAGES: '2', QUARANTINE_LIMIT: '2' } })
t.teardown(() => service.close())

const paidChange = (lsn: number) => paidOrderChange(lsn, 70_000)

const changeIdOf = (lsn: number) => changeId(paidChange(lsn).metadata as SequinMetadata)

/** Counts the ingest script's calls on the web's connection (the real call still runs). */
function countCalls (): { calls: number } {
  const redis = service.web.redis as ScriptedRedis
  const counter = { calls: 0 }
  const original = redis.cfIngest.bind(redis)
  redis.cfIngest = (...args) => { counter.calls++; return original(...args) }
  t.teardown(() => { redis.cfIngest = original })
  return counter
}

t.test('concurrent single-change batches share script calls, and each runs once', async (t) => {
  reset()
  const counter = countCalls()
  const changes = Array.from({ length: 12 }, (_, i) => paidChange(1_000 + i))
  const answers = await Promise.all(changes.map((change) => service.post({ data: [change] })))
  for (const answer of answers) t.same(answer.json(), { accepted: 1, duplicates: 0, unmatched: 0, quarantined: 0, jobs: 1 })
  t.ok(counter.calls < changes.length, `${counter.calls} script calls for ${changes.length} requests`)

  // A redelivery of one of them alongside a new one: the duplicate is told apart in the same call.
  const [again, fresh] = await Promise.all([service.post({ data: [changes[3]] }), service.post({ data: [paidChange(2_000)] })])
  t.same(again!.json(), { accepted: 0, duplicates: 1, unmatched: 0, quarantined: 0, jobs: 0 })
  t.same(fresh!.json(), { accepted: 1, duplicates: 0, unmatched: 0, quarantined: 0, jobs: 1 })

  await waitFor(() => executions.filter((e) => e.step === 'three').length === 13, 10_000, 'every run finished')
  const firstSteps = executions.filter((e) => e.step === 'one').map((e) => e.key).sort()
  t.same(firstSteps, [...changes.map((change) => String(change.record.id)), '72000'].sort(), 'each change ran once')
})

t.test('a full quarantine refuses only its own request, not one written in the same call', async (t) => {
  const counter = countCalls()
  const invalid = (n: number) => ({ action: 'update', record: { id: n }, metadata: { note: `not a Sequin message ${n}` } })
  const filled = await service.post({ data: [invalid(1), invalid(2)] })
  t.same(filled.json(), { accepted: 0, duplicates: 0, unmatched: 0, quarantined: 2, jobs: 2 }, 'the quarantine now holds its limit')
  counter.calls = 0
  const [refused, accepted] = await Promise.all([service.post({ data: [invalid(3)] }), service.post({ data: [paidChange(3_000)] })])
  t.equal(refused!.statusCode, 422, 'the batch the quarantine cannot take is refused')
  t.equal(refused!.json().code, 'CF_QUARANTINE_FULL')
  t.same(accepted!.json(), { accepted: 1, duplicates: 0, unmatched: 0, quarantined: 0, jobs: 1 }, 'the other request is written')
  t.equal(counter.calls, 1, 'both went in one script call')
  const held = Object.values(await service.queue('quarantine').getJobCounts()).reduce((sum, n) => sum + n, 0)
  t.equal(held, 2, 'nothing of the refused batch was written')
})

t.test('a segment whose request gave up while it waited is never written', async (t) => {
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const redis = withScripts(new Redis(server.url))
  t.teardown(() => redis.disconnect())
  await redis.ping()
  const workflows = await loadWorkflows(new URL('../fixtures/jobs', import.meta.url).pathname)
  const keys = new Keyspace('t-abort')
  const options = createJobOptions(workflows, service.config)
  const segment = (lsn: number) => ({ ...planBatch([paidChange(lsn)], workflows, options, new Date()), now: Date.now(), ttl: 60_000, quarantineLimit: 10 })
  const committer = new GroupCommit(redis, keys)

  server.pause() // the first call is sent and hangs; the second waits behind it
  const first = committer.submit(segment(4_000))
  await new Promise((resolve) => setTimeout(resolve, 50))
  const gaveUp = new AbortController()
  const second = committer.submit(segment(4_001), gaveUp.signal)
  gaveUp.abort(new Error('enqueue deadline'))
  await t.rejects(second, { message: 'enqueue deadline' }, 'the waiting segment is given up at once')
  server.resume()
  t.same((await first).slice(0, 1), [1], 'the call already sent completes')
  t.equal(await redis.exists(keys.seen(changeIdOf(4_000))), 1)
  t.equal(await redis.exists(keys.seen(changeIdOf(4_001))), 0, 'the given-up change was not written')
})
