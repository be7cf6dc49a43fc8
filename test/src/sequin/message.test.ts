import { readdirSync, readFileSync } from 'node:fs'
import t from 'tap'
import { parseMessage, readEnvelope } from '../../../src/sequin/message.ts'

const fixtures = new URL('../../fixtures/', import.meta.url)

function fixtureMessages (file: string): Record<string, any>[] {
  const body = JSON.parse(readFileSync(new URL(file, fixtures), 'utf8'))
  return Array.isArray(body.data) ? body.data : [body]
}

/** A valid CDC insert, built fresh for each test so that tests can mutate it. */
function sample (): Record<string, any> {
  return structuredClone(fixtureMessages('batch-orders-insert.json')[0]!)
}

function issuePaths (value: unknown): string[] {
  const parsed = parseMessage(value)
  if (parsed.ok) return []
  return parsed.issues.map((issue) => issue.path)
}

t.test('every message of every fixture parses', async (t) => {
  const files = readdirSync(fixtures).filter((file) => file.endsWith('.json'))
  t.ok(files.length >= 9, 'the fixtures are found')
  for (const file of files) {
    const messages = fixtureMessages(file)
    t.ok(messages.length > 0, `${file} holds messages`)
    messages.forEach((message, index) => {
      const parsed = parseMessage(message)
      t.equal(parsed.ok, true, `${file}[${index}] parses`)
      if (parsed.ok) t.equal(parsed.message.action, message.action)
    })
  }
})

t.test('read messages with null commit_lsn and commit_idx pass', async (t) => {
  const [read] = fixtureMessages('batch-orders-backfill-read.json')
  t.equal(read!.metadata.commit_lsn, null)
  const parsed = parseMessage(read)
  t.equal(parsed.ok, true)
  if (parsed.ok) t.equal(parsed.message.metadata.commit_idx, null)
})

t.test('unknown fields are tolerated and kept', async (t) => {
  const message = sample()
  message.future_field = { a: 1 }
  message.metadata.new_metadata = 'kept'
  const parsed = parseMessage(message)
  t.equal(parsed.ok, true)
  if (!parsed.ok) return
  t.same((parsed.message as Record<string, unknown>).future_field, { a: 1 })
  t.equal((parsed.message.metadata as Record<string, unknown>).new_metadata, 'kept')
})

t.test('the idempotency key may be derived from commit_lsn and commit_idx', async (t) => {
  const message = sample()
  delete message.metadata.idempotency_key
  t.equal(parseMessage(message).ok, true, 'no key, but lsn and idx')

  message.metadata.idempotency_key = null
  t.equal(parseMessage(message).ok, true, 'null key, but lsn and idx')

  delete message.metadata.commit_idx
  t.same(issuePaths(message), ['metadata.idempotency_key'], 'no key and no idx')

  delete message.metadata.commit_lsn
  t.same(issuePaths(message), ['metadata.idempotency_key'], 'neither key nor position')

  const read = structuredClone(fixtureMessages('batch-orders-backfill-read.json')[0]!)
  delete read.metadata.idempotency_key
  t.same(issuePaths(read), ['metadata.idempotency_key'], 'a read without key has no position to derive it from')
})

t.test('invalid fields fail with a path naming them', async (t) => {
  const cases: Array<[string, (message: Record<string, any>) => void, string]> = [
    ['wrong action', (m) => { m.action = 'upsert' }, 'action'],
    ['missing record', (m) => { delete m.record }, 'record'],
    ['record is an array', (m) => { m.record = [1, 2] }, 'record'],
    ['record is a string', (m) => { m.record = '{}' }, 'record'],
    ['bad commit_timestamp', (m) => { m.metadata.commit_timestamp = 'yesterday' }, 'metadata.commit_timestamp'],
    ['missing table_name', (m) => { delete m.metadata.table_name }, 'metadata.table_name'],
    ['negative commit_lsn', (m) => { m.metadata.commit_lsn = -1 }, 'metadata.commit_lsn'],
    ['missing metadata', (m) => { delete m.metadata }, 'metadata'],
  ]
  for (const [label, mutate, path] of cases) {
    const message = sample()
    mutate(message)
    const parsed = parseMessage(message)
    t.equal(parsed.ok, false, `${label} fails`)
    t.ok(issuePaths(message).includes(path), `${label}: an issue names ${path}`)
  }
  t.same(issuePaths('just text'), ['(message)'], 'a non-object has a path naming the whole message')
})

t.test('normalisation', async (t) => {
  const message = sample()
  delete message.changes
  message.metadata.record_pks = [1001, 'a']
  const parsed = parseMessage(message)
  t.equal(parsed.ok, true)
  if (!parsed.ok) return
  t.equal(parsed.message.changes, null, 'missing changes becomes null')
  t.strictSame(parsed.message.metadata.record_pks, ['1001', 'a'], 'numeric pks become strings')
})

t.test('readEnvelope', async (t) => {
  const [first, second] = fixtureMessages('batch-mixed-orders-users.json')
  t.strictSame(readEnvelope({ data: [first, second] }), { ok: true, batched: true, messages: [first, second] })

  const single = JSON.parse(readFileSync(new URL('single-orders-update-paid.json', fixtures), 'utf8'))
  t.strictSame(readEnvelope(single), { ok: true, batched: false, messages: [single] })

  for (const [label, body] of [['data is an object', { data: {} }], ['data is empty', { data: [] }], ['a top-level array', [first]]] as const) {
    const envelope = readEnvelope(body)
    t.equal(envelope.ok, false, `${label} is rejected`)
    if (!envelope.ok && 'reason' in envelope) t.match(envelope.reason, /\S/, `${label} has a reason`)
    else t.fail(`${label} has a reason`)
  }

  t.strictSame(readEnvelope({ data: [first, second, first] }, 2), { ok: false, tooMany: { count: 3, limit: 2 } },
    'more messages than the limit')
  t.equal(readEnvelope({ data: [first, second] }, 2).ok, true, 'exactly the limit is fine')
  for (const key of ['__proto__', 'constructor', 'prototype']) {
    const envelope = readEnvelope(JSON.parse(`{"data":[],"${key}":{}}`))
    t.match(envelope, { ok: false, reason: new RegExp(key) }, `a body-level ${key} key is not a Sequin body`)
  }
  for (const row of ['{"id":1,"prototype":true}', '{"id":2,"constructor":"ACME builders"}']) {
    const body = JSON.parse(row)
    t.strictSame(readEnvelope(body), { ok: true, batched: false, messages: [body] },
      `a bare body (a record_only row) may have a ${Object.keys(body)[1]} column: one message, judged by the schema`)
  }

  for (const body of ['text', 42, null]) {
    t.strictSame(readEnvelope(body), { ok: true, batched: false, messages: [body] }, `${JSON.stringify(body)} is one message`)
    t.equal(parseMessage(body).ok, false, `${JSON.stringify(body)} then fails the schema`)
  }

  const withExtra = { data: [first], other: 1 }
  t.strictSame(readEnvelope(withExtra), { ok: true, batched: false, messages: [withExtra] },
    'data plus other keys is a single message')
})

t.test('commit positions: numbers JSON holds exactly, or decimal text for larger ones', async (t) => {
  const [message] = fixtureMessages('batch-orders-update-paid.json')
  const at = (lsn: unknown) => parseMessage({ ...message, metadata: { ...(message as { metadata: object }).metadata, commit_lsn: lsn } })
  t.equal(at(24189630992).ok, true)
  t.equal(at('18446744073709551615').ok, true, 'the largest LSN, as the exact parser gives it')
  for (const bad of [1e21, -1, 1.5, '1e21', '12a', '123456789012345678901']) t.equal(at(bad).ok, false, `${bad} is refused`)
})
