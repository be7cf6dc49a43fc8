import t from 'tap'
import { Redis } from 'ioredis'
import { startRedisServer } from '../../scripts/lib/redis-server.ts'
import { loadConfig } from '../../src/config.ts'
import { Layout } from '../../src/keys.ts'
import { runCli } from '../../src/cli/program.ts'
import { reset } from '../fixtures/jobs/_recorder.ts'
import { message, pkRowOf, sleep, startStack, uniquePrefix } from '../helpers/stack.ts'

// WORKER_SHARDS lets a worker process consume a subset of the shards. Rows whose head run waits in
// a shard no worker consumes count as blocked (orphaned) all the same: the reconciler looks at
// every shard, not only those its process consumes.
t.setTimeout(60_000)

t.test('rows of a shard no worker consumes are reported as blocked (orphaned)', async (t) => {
  reset()
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const prefix = uniquePrefix()
  const env = { REDIS_URL: server.url, REDIS_PREFIX: prefix, REDIS_SHARDS: '2', WORKER_SHARDS: '0', RECONCILE_INTERVAL: '200ms' }
  const stack = await startStack(env, { redisUrl: server.url })
  t.teardown(() => stack.close())
  const layout = new Layout(prefix, 2)

  // Two changes on rows of shard 1 (nobody consumes it), each row with a second run behind it.
  const ids = Array.from({ length: 100 }, (_, i) => 500 + i).filter((id) => layout.shardOf(pkRowOf(message('ledger', id, 'insert', 1))) === 1).slice(0, 2)
  let lsn = 8_000_000
  for (const id of ids) {
    t.equal((await stack.post({ data: [message('ledger', id, 'insert', lsn++)] })).statusCode, 200)
    t.equal((await stack.post({ data: [message('ledger', id, 'update', lsn++)] })).statusCode, 200)
  }
  await sleep(2_500) // a dozen reconcile intervals

  const admin = new Redis(server.url)
  t.teardown(() => admin.disconnect())
  const out: string[] = []
  const cli = async (...argv: string[]) => {
    out.length = 0
    await runCli(argv, { config: loadConfig(env), redis: admin, out: (l) => out.push(l), err: (l) => out.push(l) })
    return out.map((l) => JSON.parse(l) as Record<string, unknown>)
  }
  const orphaned = await cli('orphans', '--json')
  t.ok(orphaned.some((q) => q.queue === 'ledger-apply' && q.shard === 1 && q.orphaned === true), 'orphans: ledger-apply of shard 1 is consumed by no worker')

  const blocked = await cli('blocked', '--json')
  t.equal(blocked.filter((row) => row.reason === 'orphaned').length, ids.length, `blocked lists both rows as orphaned (got ${JSON.stringify(blocked)})`)
  const metrics = (await stack.web.app.inject({ url: '/metrics' })).body
  t.match(metrics, new RegExp(`^changeflow_rows_blocked\\{reason="orphaned"\\} ${ids.length}$`, 'm'), `and the metric counts them (got: ${/^changeflow_rows_blocked\{reason="orphaned"\}.*$/m.exec(metrics)?.[0] ?? metrics.slice(0, 200)})`)
})
