import fc from 'fast-check'

/**
 * Request bodies for the webhook, generated with fast-check: Sequin messages as they come, the
 * same mutated, and whatever else a client or a transform might send. Values are built as JSON
 * text, so that a body can hold what `JSON.stringify` never writes: `__proto__` keys, integers
 * beyond 2^53, 20,000 levels of nesting.
 */
export interface GeneratedBody {
  kind: string
  /** The body as sent (before gzip). */
  text: string
  headers?: Record<string, string>
  gzip?: boolean
}

/** JSON text that goes into a body as it is. */
class Raw {
  constructor (readonly text: string) {}
}

/** JSON text of a value whose parts may be Raw; own keys are written as they are, `__proto__` included. */
export function jsonText (value: unknown): string {
  if (value instanceof Raw) return value.text
  if (Array.isArray(value)) return `[${value.map(jsonText).join(',')}]`
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value).map((key) => `${JSON.stringify(key)}:${jsonText((value as Record<string, unknown>)[key])}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

/** An object with exactly these own properties, whatever their names (`__proto__` stays a key). */
function own (entries: ReadonlyArray<readonly [string, unknown]>): Record<string, unknown> {
  const object: Record<string, unknown> = {}
  for (const [key, value] of entries) Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true })
  return object
}

const PROTOTYPE_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__']
const prototypeKey = fc.constantFrom(...PROTOTYPE_KEYS)

/** Integers JSON.parse cannot hold exactly, up to 30 digits, either sign. */
const hugeInteger = fc.oneof(
  fc.bigInt({ min: 2n ** 53n, max: 10n ** 30n }),
  fc.bigInt({ min: -(10n ** 30n), max: -(2n ** 53n) })
).map((n) => new Raw(n.toString()))

/** Nested arrays or objects, mostly a few levels, sometimes past the 1,000 the service stores. */
const deep = fc.tuple(
  fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 2, max: 1_200 }) }, { weight: 1, arbitrary: fc.constantFrom(1_001, 5_000, 20_000) }),
  fc.boolean()
).map(([depth, arrays]) => new Raw(arrays ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`))

const oddNumber = fc.constantFrom(new Raw('1e400'), new Raw('-1e400'), new Raw('1e-400'), new Raw('-0'), new Raw('0.1e1'), new Raw('123456789012345678e3'))
const oddString = fc.constantFrom(new Raw('"\\ud800"'), new Raw('"\\udfff\\ud800"'), new Raw('"\\u0000"'), '💥', 'x'.repeat(5_000), '2025-13-45T99:99:99Z')

const plainValue = fc.jsonValue({ maxDepth: 3 })
/** A column value: plain JSON mostly, and now and then one of the awkward ones. */
const columnValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 8, arbitrary: plainValue },
  { weight: 1, arbitrary: hugeInteger },
  { weight: 1, arbitrary: deep },
  { weight: 1, arbitrary: oddNumber },
  { weight: 1, arbitrary: oddString },
  { weight: 1, arbitrary: fc.tuple(prototypeKey, plainValue).map(([key, value]) => own([[key, value]])) }
)

const columns = fc.array(fc.tuple(fc.oneof(fc.string({ maxLength: 8 }), prototypeKey), columnValue), { maxLength: 4 })

/** Tables of the fixture workflows (test/fixtures/jobs), each with an action, and some no workflow wants. */
const TABLE_ACTIONS: Array<[string, string, string]> = [
  ['public', 'orders', 'update'], ['public', 'orders', 'read'], ['public', 'orders', 'insert'], ['public', 'users', 'insert'],
  ['public', 'order_items', 'update'], ['public', 'ledger', 'insert'], ['public', 'ledger', 'update'], ['public', 'ledger', 'read'],
  ['public', 'ledger_state', 'update'], ['public', 'ledger_entries', 'insert'], ['public', 'flaky_things', 'insert'],
  ['public', 'doomed_things', 'insert'], ['public', 'audit_log', 'delete'], ['other', 'users', 'insert'],
]

/** A Sequin change message (sequin-http-sink.md, b.1–b.6), with the variations real servers send. */
const message = fc.record({
  tableAction: fc.constantFrom(...TABLE_ACTIONS),
  id: fc.integer({ min: 1, max: 40 }),
  // A small space of positions: changes repeat across bodies (redeliveries) and rows see late ones.
  lsn: fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 1, max: 60_000 }) }, { weight: 1, arbitrary: fc.bigInt({ min: 2n ** 53n, max: 10n ** 20n - 1n }).map((n) => new Raw(n.toString())) }),
  idx: fc.integer({ min: 0, max: 3 }),
  keyed: fc.boolean(),
  database: fc.constantFrom('object', 'name-only', 'none'),
  pks: fc.constantFrom('strings', 'numbers', 'none', 'empty'),
  status: fc.constantFrom('paid', 'pending', 'shipped', null),
  account: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.constant(own([['toString', 1]])), fc.constant(null)),
  changes: fc.constantFrom('null', 'empty', 'status', 'columns'),
  extra: columns,
}).map((m) => {
  const [schema, table, action] = m.tableAction
  const read = action === 'read'
  const lsnText = m.lsn instanceof Raw ? m.lsn.text : String(m.lsn)
  const record = own([['id', m.id], ['status', m.status], ['account', m.account], ...m.extra])
  const changes = read || action === 'insert' || action === 'delete' || m.changes === 'null'
    ? null
    : m.changes === 'empty' ? {} : m.changes === 'status' ? { status: 'pending' } : own(m.extra)
  const metadata: Record<string, unknown> = {
    table_schema: schema,
    table_name: table,
    commit_timestamp: '2025-06-12T14:05:11.208733Z',
    commit_lsn: read ? null : m.lsn,
    commit_idx: read ? null : m.idx,
    consumer: { id: 'fuzz-sink', name: 'fuzz', annotations: {} },
  }
  if (m.keyed || read) metadata.idempotency_key = Buffer.from(read ? `b7e4d2a9-6c31-4f8e-9a05-2d7c8e1f3b64:${m.id}:${lsnText}` : `${lsnText}:${m.idx}`).toString('base64')
  if (m.database === 'object') metadata.database = { id: 'fuzz-db', name: 'fuzz', database: 'app', hostname: 'localhost', annotations: {} }
  if (m.database === 'name-only') metadata.database_name = 'fuzz'
  if (m.pks !== 'none') metadata.record_pks = m.pks === 'empty' ? [] : m.pks === 'numbers' ? [m.id] : [String(m.id)]
  return { action, record, changes, metadata } as Record<string, unknown>
})

const wrongType = fc.oneof(plainValue, fc.constantFrom('', -1, 1.5, [], {}, null, true), hugeInteger)
const FIELDS = ['action', 'record', 'changes', 'metadata']
const METADATA_FIELDS = ['table_schema', 'table_name', 'commit_timestamp', 'commit_lsn', 'commit_idx', 'idempotency_key', 'record_pks', 'database', 'consumer']

/** The message with one thing wrong: a field missing, of the wrong type, or a prototype key added. */
const mutated = fc.tuple(message, fc.integer({ min: 0, max: 4 }), fc.constantFrom(...FIELDS), fc.constantFrom(...METADATA_FIELDS), wrongType, prototypeKey)
  .map(([m, how, field, metaField, value, key]) => {
    const copy = own(Object.entries(m))
    const metadata = own(Object.entries(m.metadata as Record<string, unknown>))
    copy.metadata = metadata
    switch (how) {
      case 0: delete copy[field]; break
      case 1: copy[field] = value; break
      case 2: delete metadata[metaField]; break
      case 3: metadata[metaField] = value; break
      default: Object.defineProperty(metadata, key, { value: { polluted: true }, enumerable: true, writable: true, configurable: true })
    }
    return copy
  })

const batchOf = (item: fc.Arbitrary<unknown>) => fc.tuple(fc.array(item, { minLength: 1, maxLength: 5 }), fc.boolean())
  // Sometimes a message twice in one batch (a re-batched retry): the second is a duplicate.
  .map(([items, twice]) => ({ data: twice ? [...items, items[0]] : items }))

const asBody = (kind: string) => (value: unknown): GeneratedBody => ({ kind, text: jsonText(value) })

/** Valid JSON text cut or corrupted at one place. */
const broken = fc.tuple(message, fc.nat(), fc.constantFrom('', '"', '}', '\\', '\u0000', ',,', '\ud800')).map(([m, at, insert]) => {
  const text = jsonText({ data: [m] })
  const cut = at % text.length
  return { kind: 'not JSON (corrupted)', text: text.slice(0, cut) + insert + text.slice(cut + 1) }
})

export const bodies: fc.Arbitrary<GeneratedBody> = fc.oneof(
  { weight: 60, arbitrary: batchOf(message).map(asBody('valid batch')) },
  { weight: 20, arbitrary: message.map(asBody('valid single message')) },
  { weight: 50, arbitrary: batchOf(fc.oneof(message, mutated)).map(asBody('mutated batch')) },
  { weight: 20, arbitrary: mutated.map(asBody('mutated single message')) },
  { weight: 15, arbitrary: fc.jsonValue().map(asBody('random JSON')) },
  { weight: 10, arbitrary: fc.array(fc.jsonValue({ maxDepth: 3 }), { minLength: 1, maxLength: 4 }).map((data) => asBody('random JSON in data')({ data })) },
  { weight: 5, arbitrary: fc.tuple(prototypeKey, message).map(([key, m]) => asBody('prototype key at the top')(own([[key, { polluted: true }], ['data', [m]]]))) },
  { weight: 5, arbitrary: deep.map((value) => asBody('deep JSON body')(value)) },
  { weight: 5, arbitrary: deep.map((value) => asBody('deep JSON in data')({ data: [value] })) },
  { weight: 5, arbitrary: hugeInteger.map(asBody('huge integer body')) },
  { weight: 10, arbitrary: broken },
  { weight: 5, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }).map((text) => ({ kind: 'not JSON (text)', text })) },
  { weight: 5, arbitrary: fc.constantFrom('', ' ', '\n', 'null', '""', '[]', '{}', '{"data":[]}', '{"data":{}}').map((text) => ({ kind: 'empty or minimal', text })) },
  { weight: 5, arbitrary: batchOf(message).map((value) => ({ kind: 'valid batch, gzip', text: jsonText(value), gzip: true })) },
  {
    weight: 5,
    arbitrary: fc.tuple(message, fc.constantFrom<Record<string, string>>({ 'content-type': 'text/plain' }, { 'content-type': 'application/x-www-form-urlencoded' }, { 'content-encoding': 'br' }, { 'content-encoding': 'gzip' }))
      .map(([m, headers]): GeneratedBody => ({ kind: 'wrong content type or encoding', text: jsonText({ data: [m] }), headers: { ...headers } })),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'over 1,000 messages', text: jsonText({ data: Array.from({ length: 1_001 }, () => ({})) }) }) }
)
