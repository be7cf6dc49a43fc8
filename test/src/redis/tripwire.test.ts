import t from 'tap'
import { Redis } from 'ioredis'
import { checkRedis } from '../../../src/redis/checks.ts'
import { createTripwireState, tripwireKey, type TripwireState } from '../../../src/redis/tripwire.ts'
import { startRedisServer } from '../../../scripts/lib/redis-server.ts'

const key = tripwireKey('tripwire-test')

t.test('the data-loss tripwire', async (t) => {
  const server = await startRedisServer(['--maxmemory-policy', 'noeviction', '--appendonly', 'yes'])
  t.teardown(() => server.stop())
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 })
  t.teardown(() => redis.disconnect())
  const check = (state: TripwireState) => checkRedis(redis, { requireDurable: false, tripwires: [{ key, state }] })

  t.test('the first check on a new Redis creates the marker, with no TTL; later checks find it', async (t) => {
    await redis.flushall()
    const state = createTripwireState()
    const first = await check(state)
    t.equal(first.tripwire, 'created')
    t.same(first.problems, [], 'a brand-new Redis is not a loss')
    t.equal(key, '{tripwire-test}:_cf:tripwire')
    t.equal(await redis.pttl(key), -1)
    t.match(JSON.parse((await redis.get(key))!), { id: /^[0-9a-f-]{36}$/, createdAt: /^\d{4}-/ })
    t.equal((await check(state)).tripwire, 'present')
    const other = createTripwireState()
    t.equal((await check(other)).tripwire, 'present', 'another process adopts the existing marker')
    t.equal(other.seen, state.seen)
  })

  t.test('FLUSHALL after the marker was seen is data loss, until the process restarts', async (t) => {
    await redis.flushall()
    const state = createTripwireState()
    await check(state)
    await redis.flushall()
    const lost = await check(state)
    t.equal(lost.tripwire, 'lost')
    t.equal(lost.problems.length, 1)
    t.match(lost.problems[0], /Redis lost data: the marker key \{tripwire-test\}:_cf:tripwire .* is gone/)
    t.match(lost.problems[0], /flushed, restarted without its data, or failed over/)
    t.match(lost.problems[0], /acknowledge by restarting every changeflow process/)
    t.equal(await redis.exists(key), 0, 'the process that saw the loss does not paper over it')

    const restarted = createTripwireState()
    const fresh = await check(restarted)
    t.equal(fresh.tripwire, 'created', 'a restarted process re-creates the marker')
    t.same(fresh.problems, [])
    t.equal((await check(state)).tripwire, 'lost', 'the old process still refuses: it was not restarted')
  })

  t.test('a marker replaced by another process after a loss is data loss too', async (t) => {
    await redis.flushall()
    const state = createTripwireState()
    await check(state)
    await redis.flushall()
    await check(createTripwireState()) // another replica starts on the emptied Redis first
    const lost = await check(state)
    t.match(lost.problems, [/was replaced by one created \d{4}-/])
  })
})
