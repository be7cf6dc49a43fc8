import t from 'tap'
import { Redis } from 'ioredis'
import { startRedisServer } from '../../scripts/lib/redis-server.ts'
import { loadConfig } from '../../src/config.ts'
import { runCli } from '../../src/cli/program.ts'
import { recordLayout } from '../../src/redis/layout.ts'
import { Layout } from '../../src/keys.ts'
import { waitFor } from '../helpers/service.ts'
import { failures, reset } from '../fixtures/jobs/_recorder.ts'
import { message, startStack, uniquePrefix } from '../helpers/stack.ts'

// The operator CLI reads the keyspace's recorded layout: an operator's shell without REDIS_SHARDS
// against a three-shard keyspace still sees its blocked rows, and `layout --reset` still refuses
// while any shard holds work.
t.setTimeout(60_000)

t.test('the CLI with a REDIS_SHARDS that differs from the recorded layout', async (t) => {
  reset()
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const prefix = uniquePrefix()
  const stack = await startStack({ REDIS_URL: server.url, REDIS_PREFIX: prefix, REDIS_SHARDS: '3' }, { redisUrl: server.url })
  t.teardown(() => stack.close())
  const admin = new Redis(server.url)
  t.teardown(() => admin.disconnect())
  await recordLayout(admin, new Layout(prefix, 3)) // what `npm run web` does at start

  // A row blocked by a step that failed for good, with a run waiting behind it.
  failures.set('ledger-apply/41', 1)
  t.equal((await stack.post({ data: [message('ledger', 41, 'insert', 6_000_001)] })).statusCode, 200)
  t.equal((await stack.post({ data: [message('ledger', 41, 'update', 6_000_002)] })).statusCode, 200)

  const out: string[] = []
  const cli = async (env: Record<string, string>, ...argv: string[]) => {
    out.length = 0
    const code = await runCli(argv, { config: loadConfig({ REDIS_URL: server.url, REDIS_PREFIX: prefix, ...env }), redis: admin, out: (l) => out.push(l), err: (l) => out.push(l) })
    return { code, text: out.join('\n') }
  }
  await waitFor(async () => (await cli({ REDIS_SHARDS: '3' }, 'blocked', '--json')).text.includes('"reason":"failed"'), 10_000, 'the row to be blocked (CLI with the right count)')

  // The operator's shell lacks REDIS_SHARDS (or has a stale one).
  const blocked = await cli({}, 'blocked', '--json')
  t.ok(blocked.code !== 0 || blocked.text.includes('"reason":"failed"'),
    `blocked must list the blocked row, or refuse because the keyspace has 3 shards; got exit ${blocked.code}: ${JSON.stringify(blocked.text)}`)

  const reset1 = await cli({}, 'layout', '--reset')
  t.not(reset1.code, 0, `layout --reset must refuse while a shard holds work; got exit ${reset1.code}: ${reset1.text}`)
  t.ok(await admin.exists(new Layout(prefix, 3).recordKey()), 'the recorded shard count is still there')
})
