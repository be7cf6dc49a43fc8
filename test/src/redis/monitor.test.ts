import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import pino from 'pino'
import { RedisMonitor, type RedisMonitorOptions } from '../../../src/redis/monitor.ts'
import { tripwireKey } from '../../../src/redis/tripwire.ts'
import { startRedisServer } from '../../../scripts/lib/redis-server.ts'
import { waitFor } from '../../helpers/service.ts'

const GOOD = ['--maxmemory-policy', 'noeviction', '--appendonly', 'yes']

/** A server, a client, and a monitor whose log lines land in `lines`; all closed when the test ends. */
async function monitored (t: Test, args: string[], options: Partial<RedisMonitorOptions> = {}) {
  const server = await startRedisServer(args)
  t.teardown(() => server.stop())
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {}) // some tests stop the server on purpose
  t.teardown(() => redis.disconnect())
  const lines: string[] = []
  const log = pino({ level: 'info' }, { write (line: string) { lines.push(line) } })
  const monitor = new RedisMonitor({
    redis, log, intervalMs: 30, requireDurable: false, tripwireKeys: [tripwireKey('monitor-test')], timeoutMs: 1_000, ...options,
  })
  t.teardown(() => monitor.stop()) // before the client disconnects: teardowns run last-in first-out
  const logged = (pattern: RegExp) => lines.filter((line) => pattern.test(line)).length
  return { server, redis, monitor, logged }
}

/** Resolves after the monitor ran `count` more checks. */
async function checks (monitor: RedisMonitor, count: number) {
  for (let i = 0; i < count; i++) {
    const before = monitor.latest
    await waitFor(() => monitor.latest !== before, 5_000, 'the next check')
  }
}

t.test('not ready until the first check; ready on a good server; settings logged once', async (t) => {
  const { monitor, logged } = await monitored(t, GOOD)
  t.equal(monitor.notReadyReason(), 'redis not checked yet')
  const first = await monitor.start()
  t.same(first?.problems, [])
  t.equal(monitor.notReadyReason(), null)
  await checks(monitor, 3)
  t.equal(logged(/"msg":"redis settings"/), 1)
  t.equal(logged(/"maxmemoryPolicy":"noeviction"/), 1)
  t.equal(logged(/created the redis data-loss marker/), 1)
})

t.test('a problem is logged once across intervals, and its resolution once', async (t) => {
  const { redis, monitor, logged } = await monitored(t, [...GOOD, '--maxmemory-policy', 'allkeys-lru'])
  await monitor.start()
  await checks(monitor, 3)
  t.match(monitor.notReadyReason(), /^maxmemory-policy is allkeys-lru, changeflow needs noeviction/)
  t.equal(logged(/"level":50.*maxmemory-policy is allkeys-lru/), 1)
  t.equal(logged(/"msg":"redis settings"/), 1)

  await redis.config('SET', 'maxmemory-policy', 'noeviction')
  await waitFor(() => monitor.notReadyReason() === null, 5_000, 'the fix to be seen')
  await checks(monitor, 2)
  t.equal(logged(/resolved: maxmemory-policy is allkeys-lru/), 1)
})

t.test('several problems: the reason names the first and counts the rest', async (t) => {
  const { monitor } = await monitored(t, ['--maxmemory-policy', 'allkeys-lru', '--appendonly', 'no'], { requireDurable: true })
  await monitor.start()
  t.match(monitor.notReadyReason(), /^maxmemory-policy is allkeys-lru.* \(and 1 more: see the log\)$/)
})

t.test('an unreachable Redis makes the service not ready, logged once', async (t) => {
  const { server, monitor, logged } = await monitored(t, GOOD)
  await monitor.start()
  t.equal(monitor.notReadyReason(), null)
  await server.stop()
  await waitFor(() => monitor.notReadyReason() !== null, 5_000, 'the outage to be seen')
  t.match(monitor.notReadyReason(), /^redis check failed: /)
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(logged(/redis check failed/), 1)
})

t.test('a reconnect triggers a check at once: data loss is seen without waiting for the interval', async (t) => {
  const { server, monitor, logged } = await monitored(t, GOOD, { intervalMs: 3_600_000 })
  await monitor.start()
  const admin = new Redis(server.url, { maxRetriesPerRequest: 1 })
  t.teardown(() => admin.disconnect())
  await admin.flushall()
  await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes') // as a Redis restart would
  await waitFor(() => monitor.notReadyReason() !== null, 5_000, 'the loss to be seen')
  t.match(monitor.notReadyReason(), /^Redis lost data: .* is gone/)
  t.equal(logged(/"level":50.*Redis lost data/), 1)
})

t.test('stop() ends the checks', async (t) => {
  const { monitor } = await monitored(t, GOOD)
  await monitor.start()
  await checks(monitor, 2)
  await monitor.stop()
  const last = monitor.latest
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(monitor.latest, last, 'no check ran after stop()')
})
