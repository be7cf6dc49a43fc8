import t, { type Test } from 'tap'
import { journalRowId } from '../../src/ingest/identity.ts'
import { rowEntries } from '../../src/journal/read.ts'
import { Layout } from '../../src/keys.ts'
import { startService, type Service } from '../helpers/service.ts'
import { cliOf } from '../helpers/service.ts'
import { keyRowOf, message, pkRowOf, sleep } from '../helpers/stack.ts'

// The change journal: written by the ingest script with the change's acceptance, bounded by age
// and length, off at JOURNAL_RETENTION=0. No workers: what is stored is what is checked.

async function service (t: Test, env: Record<string, string> = {}): Promise<{ svc: Service, layout: Layout }> {
  const svc = await startService({ workers: false, env })
  t.teardown(() => svc.close())
  return { svc, layout: new Layout(svc.config.REDIS_PREFIX) }
}

t.test('an accepted change is journalled once, with its id, workflows and message; duplicates and unmatched changes write nothing', async (t) => {
  const { svc, layout } = await service(t)
  const keys = layout.home
  const insert = message('ledger', 42, 'insert', 9_100_001, { amount: 5 })
  const update = message('ledger', 42, 'update', 9_100_002, { amount: 7 })
  const unmatched = message('not_watched', 42, 'insert', 9_100_003)
  t.match((await svc.post({ data: [insert, unmatched] })).json(), { accepted: 1, unmatched: 1 })
  t.match((await svc.post({ data: [insert, update] })).json(), { accepted: 1, duplicates: 1 })
  t.equal(await svc.redis.xlen(keys.journal()), 2, 'one entry per accepted change')

  const entries = await rowEntries(svc.redis, layout.shards, 'ledger', ['42'], 0)
  t.same(entries.map((entry) => [entry.message.action, entry.message.metadata.commit_lsn]), [['insert', 9_100_001], ['update', 9_100_002]])
  t.same(entries[1]!.workflows, ['ledger-apply', 'ledger-audit'], 'the workflows it was routed to')
  t.same(entries[1]!.message, update, 'the message as it arrived')
  const [job] = await svc.queue('ledger-apply').getJobs(['waiting'])
  t.equal(entries[0]!.changeId, job?.data.changeId, 'the change id its jobs carry')
  t.ok(entries[0]!.acceptedAt <= Date.now() && entries[0]!.acceptedAt > Date.now() - 60_000, 'accepted just now')

  const index = keys.journalRow(journalRowId('ledger', ['42']))
  t.equal(await svc.redis.llen(index), 2, 'the row index holds both entries')
  const ttl = await svc.redis.pttl(index)
  t.ok(ttl > 0 && ttl <= svc.config.JOURNAL_RETENTION, `the row index expires with the retention (${ttl} ms)`)
  t.same(await rowEntries(svc.redis, layout.shards, 'ledger', ['43'], 0), [], 'another row has no entries')
})

t.test('JOURNAL_RETENTION=0 writes no journal at all', async (t) => {
  const { svc, layout } = await service(t, { JOURNAL_RETENTION: '0' })
  t.match((await svc.post({ data: [message('ledger', 1, 'insert', 9_200_001), message('ledger', 2, 'insert', 9_200_002)] })).json(), { accepted: 2 })
  t.equal(await svc.redis.exists(layout.home.journal()), 0, 'no stream')
  t.same(await svc.redis.keys(`${layout.home.own}:jr:*`), [], 'no row index')
  t.equal(await svc.queue('ledger-apply').count(), 2, 'the changes were accepted all the same')
})

t.test('the journal is bounded by length (JOURNAL_MAX_LEN, trimmed a stream node at a time)', async (t) => {
  const { svc, layout } = await service(t, { JOURNAL_MAX_LEN: '20' })
  for (let batch = 0; batch < 6; batch++) {
    const changes = Array.from({ length: 50 }, (_, i) => message('ledger', 1_000 + batch * 50 + i, 'insert', 9_300_000 + batch * 50 + i))
    t.match((await svc.post({ data: changes })).json(), { accepted: 50 })
  }
  const length = await svc.redis.xlen(layout.home.journal())
  t.ok(length >= 20 && length <= 120, `300 accepted, ${length} kept: about JOURNAL_MAX_LEN`)
  const newest = await rowEntries(svc.redis, layout.shards, 'ledger', ['1299'], 0)
  t.equal(newest.length, 1, 'the newest change is kept')
  t.same(await rowEntries(svc.redis, layout.shards, 'ledger', ['1000'], 0), [], 'the oldest is gone, and its dangling index id is skipped')
})

t.test('the journal is bounded by age (JOURNAL_RETENTION)', async (t) => {
  const { svc, layout } = await service(t, { JOURNAL_RETENTION: '1s', DEDUP_TTL: '1s', KEEP_COMPLETED_AGE: '1s' })
  const old = Array.from({ length: 40 }, (_, i) => message('ledger', 2_000 + i, 'insert', 9_400_000 + i))
  t.match((await svc.post({ data: old })).json(), { accepted: 40 })
  await sleep(1_100)
  const fresh = Array.from({ length: 40 }, (_, i) => message('ledger', 3_000 + i, 'insert', 9_500_000 + i))
  t.match((await svc.post({ data: fresh })).json(), { accepted: 40 })
  const length = await svc.redis.xlen(layout.home.journal())
  t.ok(length >= 40 && length < 80, `whole stream nodes of expired entries were trimmed: ${length} of 80 kept`)
  const since = Date.now() - svc.config.JOURNAL_RETENTION
  t.same(await rowEntries(svc.redis, layout.shards, 'ledger', ['2000'], since), [], 'an expired change is not read, trimmed or not')
  t.equal((await rowEntries(svc.redis, layout.shards, 'ledger', ['3000'], since)).length, 1)
  await sleep(1_000)
  t.equal(await svc.redis.exists(layout.home.journalRow(journalRowId('ledger', ['2000']))), 0, 'the row index expired')
})

t.test('a change whose runs live in two shards is journalled once, with every workflow it started; trace finds both runs', async (t) => {
  const { svc } = await service(t, { REDIS_SHARDS: '2' })
  const layout = new Layout(svc.config.REDIS_PREFIX, 2)
  const entry = (account: string) => message('ledger_entries', 5, 'insert', 9_600_001, { account })
  const pkShard = layout.shardOf(pkRowOf(entry('')))
  // ledger-by-account's run lives in its account's row: a shard other than the primary key's.
  const account = Array.from({ length: 50 }, (_, i) => `acct-${i}`).find((a) => layout.shardOf(keyRowOf(entry(a), a)) !== pkShard)!
  t.match((await svc.post({ data: [entry(account)] })).json(), { accepted: 1 })
  const lengths = await Promise.all(layout.shards.map((keys) => svc.redis.xlen(keys.journal())))
  t.equal(lengths[0]! + lengths[1]!, 1, 'one entry in all')
  const [journalled] = await rowEntries(svc.redis, layout.shards, 'ledger_entries', ['5'], 0)
  t.same(journalled?.workflows.sort(), ['ledger-by-account', 'ledger-entry-sync'], 'both workflows, whichever shard holds the entry')
  const trace = JSON.parse((await cliOf(svc)('trace', 'ledger_entries', '5', '--json')).stdout)
  t.same(trace.changes[0].runs.map((run: { workflow: string, state: string }) => [run.workflow, run.state]).sort(), [
    ['ledger-by-account', 'running'],
    ['ledger-entry-sync', 'running'],
  ], 'the change\'s own runs, in both shards (queued: no workers here)')
})
