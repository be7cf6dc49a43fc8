import { rmSync } from 'node:fs'
import t from 'tap'
import { Redis } from 'ioredis'
import { startRedisServer } from '../../scripts/lib/redis-server.ts'
import { Layout } from '../../src/keys.ts'
import { freePort } from '../../src/redis/embedded.ts'
import { recordLayout } from '../../src/redis/layout.ts'
import { spawnRole } from '../helpers/processes.ts'
import { waitFor } from '../helpers/service.ts'
import { JOBS_DIR, message, startStack, TOKEN, uniquePrefix } from '../helpers/stack.ts'
import { LayoutError } from '../../src/redis/layout.ts'

// The shard count is fixed for a keyspace. It is checked at start and at every Redis check after,
// so a process that started while Redis did not answer (a restart, a failover, Redis and the
// service starting together) still never accepts a batch with the wrong REDIS_SHARDS.
t.setTimeout(90_000)

t.test('a web process whose REDIS_SHARDS differs from the recorded layout never accepts a batch, even if Redis was down at its start', async (t) => {
  const prefix = uniquePrefix()
  const server = await startRedisServer(['--appendonly', 'yes', '--appendfsync', 'always'])
  t.teardown(() => server.stop())
  const admin = new Redis(server.url, { maxRetriesPerRequest: 1 })
  admin.on('error', () => {})
  t.teardown(() => admin.disconnect())
  await recordLayout(admin, new Layout(prefix, 3)) // the deployment runs with REDIS_SHARDS=3
  await server.kill() // Redis restarts (its data kept) ...

  // ... while a web process with a stale REDIS_SHARDS (1, the default) starts.
  const port = await freePort()
  const web = spawnRole('web', {
    REDIS_URL: server.url,
    REDIS_PREFIX: prefix,
    SEQUIN_WEBHOOK_TOKENS: TOKEN,
    JOBS_DIR,
    HOST: '127.0.0.1',
    PORT: String(port),
    DATA_DIR: `/tmp/${prefix}`,
    BOARD_PASSWORD: 'x',
    REDIS_CHECK_INTERVAL: '200ms',
  }, 'layout-web')
  t.teardown(async () => { await web.stop('SIGKILL'); rmSync(`/tmp/${prefix}`, { recursive: true, force: true }) })
  await waitFor(() => web.output().includes('could not check the keyspace layout') || web.child.exitCode !== null, 30_000, 'the start-up layout check to give up')
  await server.restart()
  await waitFor(() => web.output().includes('Server listening') || web.child.exitCode !== null, 30_000, 'the web process to listen or exit')

  let status = 0
  let body = ''
  const deadline = Date.now() + 10_000
  while (web.child.exitCode === null && Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/webhooks/sequin`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ data: [message('ledger', 5, 'insert', 4_000_001)] }),
      })
      status = res.status
      body = await res.text()
      if (status === 200) break
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  const written = await admin.keys(`{${prefix}}:_cf:s:*`)
  t.not(status, 200, `no 2xx from a process whose shard count the keyspace refuses (got ${status} ${body}; dedup marks written under the one-shard layout: ${written.length})`)
})

// A keyspace holding single-shard data (a release before shards) but no layout record is not
// taken over by a process with REDIS_SHARDS=3.
t.test('recording a layout over a keyspace that already holds work of another layout is refused', async (t) => {
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const prefix = uniquePrefix()
  const old = await startStack({ REDIS_URL: server.url, REDIS_PREFIX: prefix }, { workers: false, redisUrl: server.url })
  t.equal((await old.post({ data: [message('ledger', 6, 'insert', 4_100_001)] })).statusCode, 200, 'a one-shard keyspace with a waiting run (no layout recorded, as before this release)')
  await old.close()
  const admin = new Redis(server.url)
  t.teardown(() => admin.disconnect())
  await t.rejects(recordLayout(admin, new Layout(prefix, 3)), LayoutError, 'REDIS_SHARDS=3 over a one-shard keyspace that holds work')
})
