import { readFileSync } from 'node:fs'
import t from 'tap'
import { parseMessage, type SequinMessage } from '../../../src/sequin/message.ts'
import { toChange } from '../../../src/workflows/change.ts'

function fixture (file: string, index = 0): SequinMessage {
  const body = JSON.parse(readFileSync(new URL(`../../fixtures/${file}`, import.meta.url), 'utf8'))
  const parsed = parseMessage(body.data[index])
  if (!parsed.ok) throw new Error(`${file}[${index}] does not parse: ${JSON.stringify(parsed.issues)}`)
  return parsed.message
}

t.test('insert: every column changed, nothing old', async (t) => {
  const change = toChange(fixture('batch-orders-insert.json'))
  t.equal(change.action, 'insert')
  t.equal(change.schema, 'public')
  t.equal(change.table, 'orders')
  t.equal(change.changesKnown, true)
  t.equal(change.changed('status'), true)
  t.equal(change.changed('id'), true)
  t.equal(change.changed('no_such_column'), false)
  t.equal(change.old('status'), undefined)
  t.equal(change.old('id'), undefined)
})

t.test('update with REPLICA IDENTITY FULL', async (t) => {
  const message = fixture('batch-orders-update-paid.json')
  const change = toChange(message)
  t.equal(change.changesKnown, true)

  t.equal(change.changed('status'), true, 'a column listed in changes changed')
  t.equal(change.record.status, 'paid')
  t.equal(change.old('status'), 'pending', 'its old value comes from changes')

  t.equal(change.changed('paid_at'), true, 'a column that changed from NULL changed')
  t.equal(change.old('paid_at'), null, 'and its old value is null, not undefined')

  t.equal(change.changed('currency'), false, 'an unlisted column did not change')
  t.equal(change.old('currency'), 'EUR', 'and its old value is the current one')
  t.equal(change.old('total_amount'), '149.90')

  t.equal(change.changed('no_such_column'), false)
  t.equal(change.old('no_such_column'), undefined)
  t.equal(change.metadata, message.metadata)
})

t.test('update with changes: {} (default replica identity)', async (t) => {
  const change = toChange(fixture('batch-orders-update-default-replica-identity.json'))
  t.same(change.changes, {})
  t.equal(change.changesKnown, false)
  t.equal(change.changed('status'), false)
  t.equal(change.changed('updated_at'), false)
  t.equal(change.old('status'), undefined, 'the old value is unknown, not the current one')
  t.equal(change.old('id'), undefined)
})

t.test('update with changes: null is also unknown', async (t) => {
  const message = { ...fixture('batch-orders-update-paid.json'), changes: null }
  const change = toChange(message)
  t.equal(change.changesKnown, false)
  t.equal(change.changed('status'), false)
  t.equal(change.old('currency'), undefined)
})

t.test('delete: every column changed, old is the deleted row', async (t) => {
  const change = toChange(fixture('batch-users-delete.json'))
  t.equal(change.action, 'delete')
  t.equal(change.table, 'users')
  t.equal(change.changesKnown, true)
  t.equal(change.changed('email'), true)
  t.equal(change.old('email'), 'grace@example.org')
  t.equal(change.old('id'), 57)
  t.equal(change.changed('no_such_column'), false)
  t.equal(change.old('no_such_column'), undefined)
})

t.test('read (backfill): nothing changed', async (t) => {
  const change = toChange(fixture('batch-orders-backfill-read.json', 1))
  t.equal(change.action, 'read')
  t.equal(change.changesKnown, true)
  t.equal(change.record.status, 'cancelled')
  t.equal(change.changed('status'), false)
  t.equal(change.changed('id'), false)
  t.equal(change.old('status'), undefined)
})
