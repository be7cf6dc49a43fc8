import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { assessSettings, checkRedis, type RedisSettings } from '../../../src/redis/checks.ts'
import { createTripwireState, tripwireKey } from '../../../src/redis/tripwire.ts'
import { startRedisServer } from '../../../scripts/lib/redis-server.ts'

const GOOD = ['--maxmemory-policy', 'noeviction', '--appendonly', 'yes']
const key = tripwireKey('checks-test')

/** A real redis-server with `args` and a client to it, both closed when the test ends. */
async function serverWith (t: Test, args: string[]) {
  const server = await startRedisServer(args)
  t.teardown(() => server.stop())
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {}) // some tests stop the server on purpose
  t.teardown(() => redis.disconnect())
  return { server, redis }
}

function check (redis: Redis, requireDurable = false) {
  return checkRedis(redis, { requireDurable, tripwires: [{ key, state: createTripwireState() }] })
}

t.test('a server with noeviction and the append-only file has no problems and no warnings', async (t) => {
  const { redis } = await serverWith(t, GOOD)
  const result = await check(redis, true)
  t.same(result.problems, [])
  t.same(result.warnings, [])
  t.match(result.settings, { role: 'master', maxmemoryPolicy: 'noeviction', appendonly: 'yes', appendfsync: 'everysec' })
  t.match(result.settings.version, /^\d+\.\d+\.\d+$/)
  t.equal(result.tripwire, 'created')
})

t.test('an evicting maxmemory-policy is a problem that names the fix', async (t) => {
  const { redis } = await serverWith(t, [...GOOD, '--maxmemory-policy', 'allkeys-lru'])
  const result = await check(redis)
  t.equal(result.problems.length, 1)
  t.match(result.problems[0], /maxmemory-policy is allkeys-lru, changeflow needs noeviction/)
  t.match(result.problems[0], /CONFIG SET maxmemory-policy noeviction/)
  t.match(result.problems[0], /redis\.conf/)
})

t.test('appendonly no warns, and refuses when durability is required', async (t) => {
  const { redis } = await serverWith(t, ['--maxmemory-policy', 'noeviction', '--appendonly', 'no'])
  const relaxed = await check(redis)
  t.same(relaxed.problems, [])
  t.equal(relaxed.warnings.length, 1, 'no second warning about appendfsync while the file is off')
  t.match(relaxed.warnings[0], /appendonly is no, durability needs yes.*CONFIG SET appendonly yes/)
  const strict = await check(redis, true)
  t.equal(strict.problems.length, 1)
  t.match(strict.problems[0], /appendonly is no/)
  t.same(strict.warnings, [])
})

t.test('appendfsync no warns, and refuses when durability is required', async (t) => {
  const { redis } = await serverWith(t, [...GOOD, '--appendfsync', 'no'])
  const relaxed = await check(redis)
  t.same(relaxed.problems, [])
  t.match(relaxed.warnings, [/appendfsync is no, durability needs everysec or always.*CONFIG SET appendfsync everysec/])
  const strict = await check(redis, true)
  t.match(strict.problems, [/appendfsync is no/])
})

t.test('a replica is a problem, and the tripwire is not written to it', async (t) => {
  const { server: primary } = await serverWith(t, GOOD)
  const { redis } = await serverWith(t, [...GOOD, '--replicaof', '127.0.0.1', String(primary.port)])
  const result = await check(redis)
  t.equal(result.settings.role, 'slave')
  t.match(result.problems, [/Redis role is slave, changeflow needs master.*REDIS_URL/])
  t.equal(result.tripwire, 'skipped')
})

t.test('with CONFIG renamed away, INFO still gives what it can and the rest is unknown', async (t) => {
  const { redis } = await serverWith(t, [...GOOD, '--rename-command', 'CONFIG', ''])
  await t.rejects(redis.config('GET', 'appendfsync'), /unknown command/, 'CONFIG really is gone')
  const result = await check(redis)
  t.same(result.problems, [])
  t.match(result.settings, { maxmemoryPolicy: 'noeviction', appendonly: 'yes', appendfsync: null })
  t.match(result.warnings, [/appendfsync is unknown.*CONFIG GET.*everysec or always/])
})

t.test('an unreachable Redis makes the check throw, not report settings', async (t) => {
  const { server, redis } = await serverWith(t, GOOD)
  await server.stop()
  await t.rejects(check(redis))
})

const settings: RedisSettings = { version: '7.2.4', role: 'master', maxmemoryPolicy: 'noeviction', appendonly: 'yes', appendfsync: 'everysec' }

t.test('versions: below BullMQ\'s minimum refuses, below its recommendation warns', async (t) => {
  t.same(assessSettings(settings, true), { problems: [], warnings: [] })
  t.match(assessSettings({ ...settings, version: '4.0.14' }, false).problems, [/Redis version is 4\.0\.14, BullMQ needs 5\.0\.0 or newer/])
  const old = assessSettings({ ...settings, version: '6.0.20' }, false)
  t.same(old.problems, [])
  t.match(old.warnings, [/Redis version is 6\.0\.20, BullMQ recommends 6\.2\.0 or newer/])
  t.match(assessSettings({ ...settings, version: 'unknown' }, false).warnings, [/version is unknown/])
})

t.test('unknown settings warn, even when durability is required', async (t) => {
  const unknown = assessSettings({ ...settings, maxmemoryPolicy: null, appendonly: null, appendfsync: null }, true)
  t.same(unknown.problems, [])
  t.match(unknown.warnings, [/maxmemory-policy is unknown/, /appendonly is unknown/, /appendfsync is unknown/])
})
