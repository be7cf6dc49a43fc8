import t from 'tap'
import pino from 'pino'
import { Redis } from 'ioredis'
import { loadConfig } from '../../../src/config.ts'
import { createWeb } from '../../../src/runtime/services.ts'
import { startRedisServer } from '../../../scripts/lib/redis-server.ts'
import { waitFor } from '../../helpers/service.ts'

t.test('createWeb releases its Redis connection when building the app fails', async (t) => {
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const admin = new Redis(server.url)
  admin.on('error', () => {})
  t.teardown(() => admin.disconnect())
  const config = loadConfig({ REDIS_PREFIX: 'release-test' })
  const logger = pino({ level: 'silent' })
  await t.rejects(createWeb({ config, logger, redisUrl: server.url, workflows: [], tokens: [] }), /no webhook token/)
  const clients = async () => String(await admin.client('LIST')).trim().split('\n').filter((line) => line.includes('name=changeflow-web'))
  await waitFor(async () => (await clients()).length === 0, 5_000, 'the web connection to close')
  t.same(await clients(), [], 'no changeflow-web connection is left open')
})
