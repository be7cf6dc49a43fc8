import { readdirSync } from 'node:fs'
import t from 'tap'
import pino from 'pino'
import { Redis } from 'ioredis'
import { RedisNotFoundError, startEmbeddedRedis } from '../../../src/redis/embedded.ts'

const log = pino({ level: 'silent' })

t.test('starts a private redis-server with AOF and noeviction, and stops it', async (t) => {
  const dir = t.testdir({})
  const embedded = await startEmbeddedRedis(dir, process.env.PATH ?? '', log)
  const client = new Redis(embedded.url)
  t.teardown(() => client.disconnect())
  t.same(await client.config('GET', 'maxmemory-policy'), ['maxmemory-policy', 'noeviction'])
  t.same(await client.config('GET', 'appendonly'), ['appendonly', 'yes'])
  t.same(await client.config('GET', 'dir'), ['dir', dir])
  await client.set('kept', '1')
  await embedded.stop()
  t.ok(readdirSync(dir).some((name) => name.startsWith('appendonly')), 'the append-only data is under the data folder')
})

t.test('without the binary it says how to install Redis or set REDIS_URL', async (t) => {
  const error = await startEmbeddedRedis(t.testdir({}), '/nonexistent', log).catch((e: unknown) => e)
  t.type(error, RedisNotFoundError)
  t.match((error as Error).message, /apt-get install -y redis-server/)
  t.match((error as Error).message, /REDIS_URL/)
})

t.test('a private redis-server left running by a killed changeflow is taken over, not doubled', async (t) => {
  const dir = t.testdir({})
  const first = await startEmbeddedRedis(dir, process.env.PATH ?? '', log)
  // The process that started it dies without stopping it: the next start finds it.
  const second = await startEmbeddedRedis(dir, process.env.PATH ?? '', log)
  t.equal(second.url, first.url, 'the same server, so one writer of the append-only file')
  await second.stop()
  const probe = new Redis(first.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  probe.on('error', () => {})
  await t.rejects(probe.connect(), 'stopped by the process that took it over')
  await first.stop()
})
