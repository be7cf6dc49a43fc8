import { readFileSync } from 'node:fs'
import t from 'tap'
import { parseMessage } from '../../../src/sequin/message.ts'
import { toChange, type Change } from '../../../src/workflows/change.ts'
import type { Workflow } from '../../../src/workflows/define.ts'
import { routeChange } from '../../../src/workflows/route.ts'

function change (file: string, patch: (message: Record<string, any>) => void = () => {}): Change {
  const body = JSON.parse(readFileSync(new URL(`../../fixtures/${file}`, import.meta.url), 'utf8'))
  const raw = body.data[0]
  patch(raw)
  const parsed = parseMessage(raw)
  if (!parsed.ok) throw new Error(`${file} does not parse`)
  return toChange(parsed.message)
}

function workflow (name: string, fields: Partial<Workflow> = {}): Workflow {
  return { name, table: 'orders', on: ['insert', 'update', 'delete'], steps: [{ name: 'step', run: () => null }], ...fields }
}

function names (workflows: readonly Workflow[], c: Change): string[] | string {
  const routed = routeChange(workflows, c)
  return routed.ok ? routed.workflows.map((w) => w.name) : `error: ${routed.error}`
}

t.test('table matching', async (t) => {
  const workflows = [
    workflow('bare', { table: 'orders' }),
    workflow('public', { table: 'public.orders' }),
    workflow('audit', { table: 'audit.orders' }),
    workflow('users', { table: 'users' }),
    workflow('prefix', { table: 'order' }),
  ]
  t.same(names(workflows, change('batch-orders-insert.json')), ['bare', 'public'])
  const inAudit = change('batch-orders-insert.json', (m) => { m.metadata.table_schema = 'audit' })
  t.same(names(workflows, inAudit), ['bare', 'audit'], 'a bare table name matches any schema')
  t.same(names(workflows, change('batch-users-delete.json')), ['users'])
})

t.test('on filters actions', async (t) => {
  const workflows = [
    workflow('inserts', { on: ['insert'] }),
    workflow('updates', { on: ['update'] }),
    workflow('writes', { on: ['insert', 'update', 'delete'] }),
    workflow('backfills', { on: ['read'] }),
    workflow('all', { on: ['insert', 'read'] }),
  ]
  t.same(names(workflows, change('batch-orders-insert.json')), ['inserts', 'writes', 'all'])
  t.same(names(workflows, change('batch-orders-update-paid.json')), ['updates', 'writes'])
  t.same(names(workflows, change('batch-orders-backfill-read.json')), ['backfills', 'all'],
    'a read only triggers workflows listing read')
})

t.test('when decides, with the change', async (t) => {
  const seen: Change[] = []
  const workflows = [
    workflow('paid', { when: (c) => { seen.push(c); return c.changed('status') && c.record.status === 'paid' } }),
    workflow('shipped', { when: (c) => c.record.status === 'shipped' }),
    workflow('always'),
  ]
  const update = change('batch-orders-update-paid.json')
  t.same(names(workflows, update), ['paid', 'always'])
  t.equal(seen[0], update, 'when receives the change itself')
  t.same(names(workflows, change('batch-orders-update-default-replica-identity.json')), ['always'],
    'when false excludes the workflow')
})

t.test('when is not called for other tables or actions', async (t) => {
  let calls = 0
  const workflows = [
    workflow('users', { table: 'users', when: () => { calls++; return true } }),
    workflow('reads', { on: ['read'], when: () => { calls++; return true } }),
  ]
  t.same(names(workflows, change('batch-orders-insert.json')), [])
  t.equal(calls, 0)
})

t.test('matches come back in declaration order', async (t) => {
  const order = ['z', 'a', 'm', 'b']
  t.same(names(order.map((n) => workflow(n)), change('batch-orders-insert.json')), order)
  const reversed = [...order].reverse()
  t.same(names(reversed.map((n) => workflow(n)), change('batch-orders-insert.json')), reversed)
})

t.test('a when that throws is a routing error', async (t) => {
  const workflows = [
    workflow('fine'),
    workflow('broken', { when: () => { throw new Error('record.foo is not a function') } }),
    workflow('later'),
  ]
  const routed = routeChange(workflows, change('batch-orders-insert.json'))
  t.equal(routed.ok, false)
  if (routed.ok) return
  t.equal(routed.workflow, 'broken')
  t.match(routed.error, 'record.foo is not a function')

  const odd = routeChange([workflow('odd', { when: () => { throw 'plain string' } })], change('batch-orders-insert.json')) // eslint-disable-line no-throw-literal
  t.match(odd, { ok: false, workflow: 'odd', error: /plain string/ }, 'a non-Error throw is described too')
})
