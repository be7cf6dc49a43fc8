import t from 'tap'
import { Redis } from 'ioredis'
import { executions, reset } from '../fixtures/jobs/_recorder.ts'
import { startRedisServer } from '../../scripts/lib/redis-server.ts'
import { fixtureMessages, startService, waitFor, withIdentity } from '../helpers/service.ts'

const paid = fixtureMessages('batch-orders-update-paid')[0]!

t.test('503 with Retry-After while Redis is unreachable, then 200 once it is back', async (t) => {
  const server = await startRedisServer()
  const service = await startService({ redisUrl: server.url, workers: false })
  t.teardown(() => service.close())
  await waitFor(() => service.web.redis.status === 'ready', 5_000, 'redis ready')
  await server.stop()
  await waitFor(() => service.web.redis.status !== 'ready', 5_000, 'the connection to drop')

  const response = await service.post({ data: [withIdentity(paid, 1)] })
  t.equal(response.statusCode, 503)
  t.equal(response.headers['retry-after'], '5')
  t.match(response.json(), { code: 'CF_UNAVAILABLE' })
  const ready = await service.web.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503)
  t.match(ready.json(), { status: 'not ready' })
})

t.test('503 when Redis is slower than ENQUEUE_TIMEOUT; the late write and the redelivery run each step once', async (t) => {
  reset()
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const service = await startService({ redisUrl: server.url, env: { ENQUEUE_TIMEOUT: '300ms' } })
  t.teardown(() => service.close())
  await waitFor(() => service.web.redis.status === 'ready', 5_000, 'redis ready')

  const admin = new Redis(server.url)
  admin.on('error', () => {})
  t.teardown(() => admin.disconnect())
  await admin.client('PAUSE', 1_500, 'WRITE')
  const change = withIdentity(paid, 2)
  const started = Date.now()
  const slow = await service.post({ data: [change] })
  t.equal(slow.statusCode, 503, 'answered before the deadline Sequin would give up on')
  t.ok(Date.now() - started < 1_400, 'answered at the enqueue deadline, not when Redis woke up')
  t.match(slow.json(), { code: 'CF_UNAVAILABLE', message: /too slow/ })

  // Redis wakes up and runs the delayed script; Sequin then redelivers the batch.
  await waitFor(async () => {
    const response = await service.post({ data: [change] })
    return response.statusCode === 200 && response.json().duplicates === 1
  }, 5_000, 'the redelivery to see the late write as a duplicate')
  await waitFor(() => executions.filter((e) => e.step === 'three').length === 1, 5_000, 'the run')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(executions.filter((e) => e.step === 'one').length, 1, 'the first step ran once')
})

t.test('INVALID_MESSAGES=reject answers 422 with per-index errors and enqueues nothing', async (t) => {
  const service = await startService({ workers: false, env: { INVALID_MESSAGES: 'reject' } })
  t.teardown(() => service.close())
  const good = withIdentity(paid, 3)
  const bad = { ...withIdentity(paid, 4), record: 'not an object' }
  const response = await service.post({ data: [good, bad, 42] })
  t.equal(response.statusCode, 422)
  const body = response.json()
  t.equal(body.code, 'CF_INVALID_MESSAGES')
  t.same(body.messages.map((m: { index: number }) => m.index), [1, 2])
  t.match(body.messages[0].issues, [{ path: 'record' }])
  t.equal(await service.queue('order-flow').count(), 0, 'not even the valid message was enqueued')
  t.equal(await service.queue('quarantine').count(), 0)

  const fixed = await service.post({ data: [good] })
  t.match(fixed.json(), { accepted: 1 }, 'the valid change was not marked seen by the rejected batch')
})

t.test('a Redis that may evict keys keeps the service not ready: the webhook answers 503, never 2xx', async (t) => {
  const server = await startRedisServer(['--maxmemory-policy', 'allkeys-lru'])
  t.teardown(() => server.stop())
  const service = await startService({ redisUrl: server.url, workers: false })
  t.teardown(() => service.close())
  await waitFor(() => service.web.redis.status === 'ready', 5_000, 'redis ready')
  const response = await service.post({ data: [withIdentity(paid, 5)] })
  t.equal(response.statusCode, 503)
  t.equal(response.headers['retry-after'], '5')
  const ready = await service.web.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503)
  t.match(ready.json().reason, /maxmemory-policy/)

  // The operator fixes it; the next check (on reconnect or every REDIS_CHECK_INTERVAL) sees it.
  const admin = new Redis(server.url)
  admin.on('error', () => {})
  t.teardown(() => admin.disconnect())
  await admin.config('SET', 'maxmemory-policy', 'noeviction')
  service.web.redis.disconnect(true)
  await waitFor(async () => (await service.web.app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200, 10_000, 'ready again')
  t.equal((await service.post({ data: [withIdentity(paid, 5)] })).statusCode, 200)
})
