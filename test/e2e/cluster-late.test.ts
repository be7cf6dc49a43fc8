import t, { type Test } from 'tap'
import { startRedisCluster } from '../../scripts/lib/redis-cluster.ts'
import { startRedisServer } from '../../scripts/lib/redis-server.ts'
import { Layout } from '../../src/keys.ts'
import { executions, reset } from '../fixtures/jobs/_recorder.ts'
import { waitFor } from '../helpers/service.ts'
import { keyRowOf, message, pkRowOf, sleep, startStack, uniquePrefix } from '../helpers/stack.ts'

// Late detection compares a change with the newest accepted for its row's primary key. A workflow
// with its own `key` (ledger-by-account: key = account) puts its runs in the shard of the key's
// row, possibly another than the primary-key row's: lateness is then decided in the primary-key
// row's shard first and carried to the other shards, so that a sharded layout tells late changes
// exactly as one Redis does.
t.setTimeout(90_000)

const ID = 7
const SHARDS = 3

function pickAccounts (layout: Layout): { newer: string, older: string } {
  const pk = layout.shardOf(pkRowOf(message('ledger_entries', ID, 'insert', 1)))
  const shardOfAccount = (account: string) => layout.shardOf(keyRowOf(message('ledger_entries', ID, 'insert', 1), account))
  const accounts = Array.from({ length: 200 }, (_, i) => `acct-${i}`)
  const newer = accounts.find((a) => shardOfAccount(a) !== pk)!
  const older = accounts.find((a) => shardOfAccount(a) !== pk && shardOfAccount(a) !== shardOfAccount(newer))!
  return { newer, older }
}

async function scenario (t: Test, env: Record<string, string>, redisUrl?: string): Promise<void> {
  reset()
  const prefix = uniquePrefix()
  const stack = await startStack({ REDIS_PREFIX: prefix, ...env }, { redisUrl })
  t.teardown(() => stack.close())
  // The accounts are chosen on the three-shard layout in both runs, so both see the same input.
  const { newer, older } = pickAccounts(new Layout(prefix, SHARDS))
  const newest = message('ledger_entries', ID, 'insert', 9_000_500, { account: newer })
  const oldest = message('ledger_entries', ID, 'insert', 9_000_400, { account: older })

  t.equal((await stack.post({ data: [newest] })).statusCode, 200)
  await waitFor(() => executions.length === 2, 10_000, 'the newer change to run in both workflows')
  t.equal((await stack.post({ data: [oldest] })).statusCode, 200)
  await waitFor(() => executions.some((e) => e.workflow === 'ledger-by-account' && e.lsn === 9_000_400), 10_000, 'the older change to run by account')
  await sleep(300)

  const sync = executions.filter((e) => e.workflow === 'ledger-entry-sync').map((e) => e.lsn)
  t.same(sync, [9_000_500], "ledger-entry-sync (late: 'skip') skipped the older change")
  const byAccount = executions.filter((e) => e.workflow === 'ledger-by-account' && e.lsn === 9_000_400)
  t.same(byAccount.map((e) => e.late), [true], 'the older change reached ledger-by-account marked change.late: its primary key already had a newer change')
}

t.test('control: one Redis, one shard', async (t) => {
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  await scenario(t, { REDIS_URL: server.url }, server.url)
})

t.test('a three-master Redis Cluster, REDIS_SHARDS=3: an older change of a primary key is late in every workflow', async (t) => {
  const cluster = await startRedisCluster({ masters: 3 })
  t.teardown(() => cluster.stop())
  await scenario(t, { REDIS_CLUSTER_NODES: cluster.addresses, REDIS_SHARDS: String(SHARDS) })
})
