import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { Layout } from '../../../src/keys.ts'
import { inChunks, selectChanges } from '../../../src/journal/replay.ts'
import type { JournalEntry, JournalGap } from '../../../src/journal/read.ts'
import { REDIS_URL } from '../../helpers/test-redis.ts'
import { message, orderPaid } from '../../helpers/stack.ts'
import { loadConfig, projectRoot } from '../../../src/config.ts'
import { replay } from '../../../src/operations/replay-command.ts'
import { loadWorkflows } from '../../../src/workflows/load.ts'

// A replay reads the journal as it goes (src/journal/replay.ts, selectChanges): every shard a page
// of 500 entries at a time, merged by acceptance, each change once, and only what the journals
// held when the selection began.
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
t.teardown(() => redis.disconnect())

/** A layout of its own, its keys deleted at the end. */
function layoutOf (t: Test, shards: number): Layout {
  const layout = new Layout(`sel-${randomBytes(4).toString('hex')}`, shards)
  t.teardown(async () => {
    for (const keys of layout.shards) await redis.del(keys.journal())
  })
  return layout
}

/** Journals a change as the ingest script does: its entry id says when it was accepted. */
function journal (layout: Layout, shard: number, entryId: string, change: string, row: number) {
  return redis.xadd(layout.shards[shard]!.journal(), entryId, 'i', change, 'w', 'order-flow', 'c', JSON.stringify(message('orders', row, 'update', 9_000_000 + row)))
}

async function all (entries: AsyncIterable<JournalEntry>): Promise<JournalEntry[]> {
  const found: JournalEntry[] = []
  for await (const entry of entries) found.push(entry)
  return found
}

t.test('the shards\' journals merged in the order their changes were accepted, each change once, the earliest entry of it', async (t) => {
  const layout = layoutOf(t, 3)
  await journal(layout, 1, '1000-0', 'a', 1)
  await journal(layout, 0, '1001-0', 'b', 2)
  await journal(layout, 2, '1001-1', 'c', 3)
  await journal(layout, 0, '1002-0', 'a', 1) // accepted again (its dedup mark had expired)
  await journal(layout, 1, '1003-0', 'd', 4)
  await journal(layout, 2, '1004-0', 'e', 5)
  const found = await all(selectChanges(redis, layout, {}, 0))
  t.same(found.map((entry) => [entry.changeId, entry.shard, entry.entry]), [
    ['a', 1, '1000-0'], ['b', 0, '1001-0'], ['c', 2, '1001-1'], ['d', 1, '1003-0'], ['e', 2, '1004-0'],
  ])
  t.same(found.map((entry) => entry.message.record.id), [1, 2, 3, 4, 5], 'each with its message')
  t.same((await all(selectChanges(redis, layout, { key: ['4'] }, 0))).map((entry) => entry.changeId), ['d'], 'only what the selection names')
  t.same((await all(selectChanges(redis, layout, {}, 1002))).map((entry) => entry.changeId), ['a', 'd', 'e'], 'nothing accepted before `since`')
})

t.test('entries of the same millisecond: in their stream\'s order within a shard, by sequence number between shards', async (t) => {
  const layout = layoutOf(t, 2)
  await journal(layout, 0, '5000-2', 'p', 1)
  await journal(layout, 0, '5000-10', 'q', 2)
  await journal(layout, 1, '5000-9', 'r', 3)
  await journal(layout, 1, '5000-11', 's', 4)
  t.same((await all(selectChanges(redis, layout, {}, 0))).map((entry) => entry.entry), ['5000-2', '5000-9', '5000-10', '5000-11'])
})

t.test('read a page at a time as the replay goes, and only what the journals held when it began', async (t) => {
  const layout = layoutOf(t, 2)
  const pipeline = redis.pipeline()
  for (let i = 0; i < 1_200; i++) {
    pipeline.xadd(layout.shards[i % 2]!.journal(), `${2000 + i}-0`, 'i', `c${i}`, 'w', 'order-flow', 'c', JSON.stringify(message('orders', i, 'update', 9_100_000 + i)))
  }
  await pipeline.exec()
  const selection = selectChanges(redis, layout, {}, 0)
  const first = await selection.next()
  t.equal(first.value?.changeId, 'c0')
  // Journalled after the selection began: not part of it.
  await journal(layout, 0, '9000-0', 'late', 9_999)
  const rest = await all(selection)
  t.equal(rest.length, 1_199, 'every entry of both shards, across their pages')
  t.same(rest.map((entry) => entry.changeId), Array.from({ length: 1_199 }, (_, i) => `c${i + 1}`), 'in acceptance order')

  // The journals gone after the first entry was read: a selection reading as it goes yields the
  // first page of each shard it had read, not the 1,200 entries a selection read up front would.
  const gaps: JournalGap[] = []
  const again = selectChanges(redis, layout, {}, 0, (gap) => gaps.push(gap))
  await again.next()
  for (const keys of layout.shards) await redis.del(keys.journal())
  t.equal((await all(again)).length, 999, '500 entries of each shard were read, one of them already yielded')
  t.same(gaps.sort((a, b) => a.shard - b.shard), [
    { shard: 0, after: '2998-0', before: null },
    { shard: 1, after: '2999-0', before: null },
  ], 'what the deleted journals still held is reported')
})

/** Every key of a layout (a replay's runs and jobs too). */
async function deleteKeys (layout: Layout): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `*${layout.prefix}*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) await redis.del(...keys)
  } while (cursor !== '0')
}

/** What `replay` runs with, on this layout and the test workflows; `lines` is what it prints. */
async function contextOf (layout: Layout) {
  const workflows = await loadWorkflows(`${projectRoot}test/fixtures/jobs/`)
  const config = loadConfig({ REDIS_URL, SEQUIN_WEBHOOK_TOKENS: 'test-token' })
  const lines: string[] = []
  const ctx = { config, redis, layout, out: (line: string) => lines.push(line), err: (line: string) => lines.push(line), workflows: async () => workflows }
  return { ctx, lines }
}

t.test('a replay of more changes than it reads at a time counts and starts every one, once', async (t) => {
  const layout = layoutOf(t, 1)
  t.teardown(() => deleteKeys(layout))
  const pipeline = redis.pipeline()
  const now = Date.now()
  for (let i = 0; i < 2_100; i++) {
    pipeline.xadd(layout.home.journal(), `${now - 10_000 + i}-0`, 'i', `r${i}`, 'w', 'order-flow', 'c', JSON.stringify(orderPaid(80_000 + i, 9_200_000 + i)))
  }
  await pipeline.exec()
  const { ctx } = await contextOf(layout)
  const forced = { force: true, dryRun: false, json: false, waitMs: 0 }

  t.match((await replay(ctx, { ...forced, dryRun: true })).data, { generation: 1, selected: 2_100, runs: 2_100, existing: 0, trimmed: [] }, 'a dry run')
  t.match((await replay(ctx, forced)).data, { generation: 1, selected: 2_100, runs: 2_100, existing: 0, enqueued: 2_100, notStarted: 0, unfinished: 2_100 })
  t.equal(await redis.llen(`${layout.home.bullPrefix}:order-flow:wait`), 2_100, 'a first step each (no worker runs here)')
  t.match((await replay(ctx, { ...forced, generation: 1 })).data, { generation: 1, selected: 2_100, runs: 2_100, existing: 2_100, enqueued: 0 }, 'the same generation again starts nothing')
  t.equal(await redis.llen(`${layout.home.bullPrefix}:order-flow:wait`), 2_100)
})

t.test('entries the journal trims before the replay reads them are reported, and the replay exits 1', async (t) => {
  const layout = layoutOf(t, 1)
  t.teardown(() => deleteKeys(layout))
  const key = layout.home.journal()
  const now = Date.now()
  const id = (i: number) => `${now - 60_000 + i}-0`
  const fill = async () => {
    await redis.del(key)
    const pipeline = redis.pipeline()
    for (let i = 0; i < 3_000; i++) pipeline.xadd(key, id(i), 'i', `t${i}`, 'w', 'order-flow', 'c', JSON.stringify(orderPaid(60_000 + i, 9_500_000 + i)))
    await pipeline.exec()
  }
  const { ctx, lines } = await contextOf(layout)
  const dry = { force: true, dryRun: true, json: false, waitMs: 0 }

  // Trimmed before the replay began: not the replay's to miss.
  await fill()
  await redis.xtrim(key, 'MINID', id(100))
  t.match((await replay(ctx, dry)), { code: 0, data: { selected: 2_900, trimmed: [] } })

  // Live traffic at the journal's length bound while the replay runs: the oldest entries go.
  await fill()
  let trimmedAt = 0
  const live = {
    ...ctx,
    progress: async ({ selected }: { selected: number }) => {
      if (selected !== 1_000 || trimmedAt > 0) return
      trimmedAt = selected
      const pipeline = redis.pipeline()
      for (let i = 0; i < 2_000; i++) pipeline.xadd(key, 'MAXLEN', '=', '3000', '*', 'i', `live${i}`, 'w', 'order-flow', 'c', '{}')
      await pipeline.exec()
    }
  }
  lines.length = 0
  const atBound = await replay(live, dry)
  // Read when the trim came: two pages, and the first entry of the third (the merge reads ahead).
  t.match(atBound, { code: 1, data: { selected: 2_500, trimmed: [{ shard: 0, after: id(1_499), before: id(2_000) }] } })
  t.match(lines.join('\n'), /trimmed from shard 0's journal before the replay read them: changes accepted after \S+ and before \S+; those selected were not replayed/)

  // The age bound (XTRIM MINID) passing the replay.
  await fill()
  const aged = {
    ...ctx,
    progress: async ({ selected }: { selected: number }) => {
      if (selected === 1_000) await redis.xtrim(key, 'MINID', id(2_200))
    }
  }
  t.match(await replay(aged, dry), { code: 1, data: { selected: 2_300, trimmed: [{ shard: 0, after: id(1_499), before: id(2_200) }] } })
})

t.test('a journal that lost its newest entries while the replay ran (an older copy of it restored) is reported', async (t) => {
  const layout = layoutOf(t, 1)
  const key = layout.home.journal()
  const pipeline = redis.pipeline()
  for (let i = 0; i < 1_200; i++) pipeline.xadd(key, `${4000 + i}-0`, 'i', `o${i}`, 'w', 'order-flow', 'c', JSON.stringify(message('orders', i, 'update', 9_600_000 + i)))
  await pipeline.exec()
  const older = await redis.dumpBuffer(key) // as a replica that lagged holds it
  await redis.xadd(key, '9000-0', 'i', 'newest', 'w', 'order-flow', 'c', JSON.stringify(message('orders', 9_000, 'update', 9_700_000)))
  const gaps: JournalGap[] = []
  const selection = selectChanges(redis, layout, {}, 0, (gap) => gaps.push(gap))
  await selection.next()
  await redis.restore(key, 0, older, 'REPLACE')
  t.equal((await all(selection)).length, 1_199, 'the older copy\'s entries')
  t.same(gaps, [{ shard: 0, after: '5199-0', before: null }], 'and the newest entry, lost with the copy, reported')
})

t.test('chunks of a selection', async (t) => {
  async function * numbers (n: number) { for (let i = 0; i < n; i++) yield i }
  const sizes = async (n: number, size: number) => {
    const found: number[] = []
    for await (const chunk of inChunks(numbers(n), size)) found.push(chunk.length)
    return found
  }
  t.same(await sizes(2_500, 1_000), [1_000, 1_000, 500])
  t.same(await sizes(2_000, 1_000), [1_000, 1_000])
  t.same(await sizes(0, 1_000), [])
})
