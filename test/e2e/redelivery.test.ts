import t from 'tap'
import { Keyspace } from '../../src/keys.ts'
import type { ScriptedRedis } from '../../src/redis/scripts.ts'
import { paidOrderChange, startService } from '../helpers/service.ts'

// A redelivered batch whose changes this process wrote, and whose dedup marks Redis still holds,
// is answered without the ingest script (src/ingest/redelivery.ts); anything else takes it.
const service = await startService({ env: { KEEP_COMPLETED: '0' }, workers: false })
t.teardown(() => service.close())
const keys = new Keyspace(service.config.REDIS_PREFIX)

const paidChange = (lsn: number) => paidOrderChange(lsn, 90_000)

const redis = service.web.redis as ScriptedRedis
let scriptCalls = 0
const original = redis.cfIngest.bind(redis)
redis.cfIngest = (...args) => { scriptCalls++; return original(...args) }
t.teardown(() => { redis.cfIngest = original })

const batch = [paidChange(1), paidChange(2), paidChange(3)]
const answer = async (data: unknown[]) => {
  const before = scriptCalls
  const response = await service.post({ data })
  return { status: response.statusCode, body: response.json(), scripts: scriptCalls - before }
}

t.test('a redelivery is answered as duplicates without the script', async (t) => {
  t.match(await answer(batch), { status: 200, body: { accepted: 3, duplicates: 0 }, scripts: 1 })
  t.match(await answer(batch), { status: 200, body: { accepted: 0, duplicates: 3, unmatched: 0, quarantined: 0, jobs: 0 }, scripts: 0 })
  t.match(await answer([batch[1]]), { body: { duplicates: 1 }, scripts: 0 }, 'part of it, re-batched')
  const metrics = await service.web.app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.body, /changeflow_messages_total\{table="public\.orders",action="update",outcome="duplicate"\} 4/)
})

t.test('a new change among them, or an invalid message, takes the script', async (t) => {
  t.match(await answer([...batch, paidChange(4)]), { body: { accepted: 1, duplicates: 3 }, scripts: 1 })
  t.match(await answer([...batch, { action: 'update' }]), { body: { duplicates: 4 - 1, quarantined: 1 }, scripts: 1 })
})

t.test('a mark Redis no longer holds (its data lost) is never taken on the process\'s word', async (t) => {
  const { changeId } = await import('../../src/ingest/identity.ts')
  const id = changeId(batch[0]!.metadata as never)
  await service.redis.del(keys.seen(id))
  // The script decides: its run is still queued (no worker here), so it is not started twice.
  t.match(await answer(batch), { body: { accepted: 0, duplicates: 3 }, scripts: 1 }, 'the script was asked')
  t.equal(await service.redis.hexists(keys.seen(id), '_'), 1, 'and marked the change again')
})

t.test('an identity that cannot be text is left to planning, which quarantines it', async (t) => {
  const odd = { ...paidChange(7), metadata: { ...paidChange(7).metadata, idempotency_key: { toString: 'x', valueOf: 'y' } } }
  t.match(await answer([odd]), { status: 200, body: { quarantined: 1 } })
})

t.test('another message under a known identity is planned as what it is', async (t) => {
  const other = { ...batch[1]!, metadata: { ...batch[1]!.metadata, table_name: 'no_workflow_here' } }
  t.match(await answer([other]), { status: 200, body: { accepted: 0, duplicates: 0, unmatched: 1 } }, 'unmatched, not a duplicate')
  const deep: Record<string, unknown> = {}
  let at = deep
  for (let i = 0; i < 1_100; i++) at = (at.a = {}) as Record<string, unknown>
  const tooDeep = { ...batch[2]!, record: { ...batch[2]!.record, deep } }
  t.match(await answer([tooDeep]), { status: 200, body: { duplicates: 0, quarantined: 1 } }, 'quarantined, not a duplicate')
})
