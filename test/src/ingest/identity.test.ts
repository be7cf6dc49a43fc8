import { randomBytes, randomInt } from 'node:crypto'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { changeId, idempotencyKey, quarantineJobId, rowId, runId, stepJobId } from '../../../src/ingest/identity.ts'
import { parseMessage, type SequinMetadata } from '../../../src/sequin/message.ts'

const body = JSON.parse(readFileSync(new URL('../../fixtures/batch-orders-update-paid.json', import.meta.url), 'utf8'))
const parsed = parseMessage(body.data[0])
if (!parsed.ok) throw new Error('fixture does not parse')
const base: SequinMetadata = parsed.message.metadata

function meta (patch: Record<string, unknown>): SequinMetadata {
  return { ...structuredClone(base), ...patch } as SequinMetadata
}

t.test('changeId identifies (source database, idempotency key)', async (t) => {
  const id = changeId(base)
  t.match(id, /^[A-Za-z0-9_-]{22}$/)
  t.equal(changeId(meta({})), id, 'stable')
  t.equal(changeId(meta({ consumer: { id: 'another-sink', name: 'other', annotations: {} } })), id,
    'the same change from another sink is the same change')
  t.equal(changeId(meta({ commit_timestamp: '2030-01-01T00:00:00Z' })), id, 'only the key and source count')
  t.not(changeId(meta({ database: { ...base.database!, id: 'other-db' } })), id, 'another database')
  t.not(changeId(meta({ idempotency_key: 'MjQxODk2MzA5OTI6Mg==' })), id, 'another key')
})

t.test('changeId falls back to database_name without database', async (t) => {
  const byName = changeId(meta({ database: undefined, database_name: 'shop-prod' }))
  t.equal(changeId(meta({ database: null, database_name: 'shop-prod' })), byName)
  t.not(changeId(meta({ database: undefined, database_name: 'shop-staging' })), byName, 'the name tells sources apart')
  t.not(byName, changeId(meta({ database: undefined, database_name: undefined })))
})

t.test('without idempotency_key, the key Sequin would derive is used', async (t) => {
  t.equal(base.idempotency_key, 'MjQxODk2MzA5OTI6MQ==')
  t.equal(Buffer.from('24189630992:1').toString('base64'), 'MjQxODk2MzA5OTI6MQ==')
  const derived = changeId(meta({ idempotency_key: undefined, commit_lsn: 24189630992, commit_idx: 1 }))
  t.equal(derived, changeId(base), 'base64 of lsn:idx')
  t.equal(changeId(meta({ idempotency_key: null })), changeId(base), 'a null key is derived too')
  t.not(changeId(meta({ idempotency_key: undefined, commit_idx: 2 })), derived)
})

t.test('runId differs per workflow and per change', async (t) => {
  const change = changeId(base)
  const run = runId(change, 'order-paid')
  t.equal(runId(change, 'order-paid'), run)
  t.not(runId(change, 'order-shipped'), run)
  t.not(runId(changeId(meta({ idempotency_key: 'other' })), 'order-paid'), run)
  t.match(run, /^[A-Za-z0-9_-]{22}$/)
})

t.test('stepJobId is a safe BullMQ job id', async (t) => {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789-'
  const ids = new Set<string>()
  let bad = 0
  for (let i = 0; i < 2000; i++) {
    const key = randomBytes(randomInt(1, 40)).toString(i % 2 ? 'base64' : 'hex')
    const change = changeId(meta({ idempotency_key: key, database: { ...base.database!, id: String(i) } }))
    const workflow = String(randomInt(0, 1e9))
    const step = String(randomInt(0, 10)) + Array.from({ length: randomInt(0, 20) }, () => alphabet[randomInt(alphabet.length)]).join('')
    const id = stepJobId(runId(change, workflow), step)
    ids.add(id)
    if (id.includes(':') || /^\d+$/.test(id) || !/^[A-Za-z0-9._-]+$/.test(id)) {
      bad++
      t.fail(`unsafe job id ${id}`)
    }
  }
  t.equal(bad, 0, 'no id has ":", is all digits, or leaves the URL-safe alphabet')
  t.equal(ids.size, 2000, 'no collisions')
  const run = runId(changeId(base), 'w')
  t.not(stepJobId(run, 'a'), stepJobId(run, 'b'), 'differs per step')
  t.equal(stepJobId(run, '1'), stepJobId(run, '1'))
})

t.test('idempotencyKey is stable per (workflow, step, change)', async (t) => {
  const change = changeId(base)
  const key = idempotencyKey('order-paid', 'reserve', change)
  t.equal(idempotencyKey('order-paid', 'reserve', change), key)
  t.not(idempotencyKey('order-paid', 'ship', change), key, 'differs per step')
  t.not(idempotencyKey('order-other', 'reserve', change), key, 'differs per workflow')
  t.not(idempotencyKey('order-paid', 'reserve', changeId(meta({ idempotency_key: 'x' }))), key, 'differs per change')
})

t.test('quarantineJobId is deterministic', async (t) => {
  const raw = JSON.stringify({ action: 'nope' })
  const id = quarantineJobId(raw)
  t.equal(quarantineJobId(raw), id)
  t.not(quarantineJobId(JSON.stringify({ action: 'other' })), id)
  t.notMatch(id, /:/)
  t.match(id, /^[A-Za-z0-9._-]+$/)
  t.notMatch(quarantineJobId('12345'), /^\d+$/)
})

t.test('a row of "a.b"."c" is not a row of "a"."b.c"', async (t) => {
  t.not(rowId('db', 'a.b', 'c', 'pk', ['1']), rowId('db', 'a', 'b.c', 'pk', ['1']))
  t.equal(rowId('db', 'public', 'orders', 'pk', ['1']), rowId('db', 'public', 'orders', 'pk', ['1']))
  t.not(rowId('db', 'public', 'orders', 'pk', ['1']), rowId('db', 'public', 'orders', 'key', ['1']))
})
