import { readFileSync } from 'node:fs'
import t from 'tap'
import { changeId, rowId, runId, stepJobId } from '../../../src/ingest/identity.ts'
import { planBatch, type JobOptions } from '../../../src/ingest/plan.ts'
import { parseMessage } from '../../../src/sequin/message.ts'
import type { Workflow } from '../../../src/workflows/define.ts'

const now = new Date('2025-06-12T14:05:12.000Z')
const options: JobOptions = { step: () => '{"attempts":3}', quarantine: '{"attempts":1}' }

function fixture (file: string, index = 0): Record<string, any> {
  const body = JSON.parse(readFileSync(new URL(`../../fixtures/${file}`, import.meta.url), 'utf8'))
  return body.data[index]
}

const paid: Workflow = {
  name: 'order-paid',
  table: 'orders',
  on: ['update'],
  when: (change) => change.changed('status') && change.record.status === 'paid',
  steps: [{ name: 'reserve', run: () => 1 }, { name: 'ship', run: () => 2 }],
}
const audit: Workflow = {
  name: 'order-audit',
  table: 'public.orders',
  on: ['insert', 'update'],
  steps: [{ name: 'record', run: () => 1 }],
}
const workflows = [paid, audit]

t.test('a matched change yields one job per matched workflow', async (t) => {
  const raw = fixture('batch-orders-update-paid.json')
  const plan = planBatch([raw], workflows, options, now)
  t.equal(plan.unmatched, 0)
  t.same(plan.quarantine, [])
  t.equal(plan.unknownChanges.size, 0)
  t.equal(plan.changes.length, 1)

  const parsed = parseMessage(raw)
  if (!parsed.ok) throw new Error('fixture does not parse')
  const change = changeId(parsed.message.metadata)
  const [planned] = plan.changes
  t.equal(planned!.changeId, change)
  t.same(planned!.jobs.map((job) => job.queue), ['order-paid', 'order-audit'], 'queue is the workflow, in declaration order')

  const [job] = planned!.jobs
  t.equal(job!.name, 'reserve', 'the first step')
  t.equal(job!.id, stepJobId(runId(change, 'order-paid'), 'reserve'))
  t.equal(planned!.jobs[1]!.id, stepJobId(runId(change, 'order-audit'), 'record'))
  t.equal(job!.opts, '{"attempts":3}')

  const data = JSON.parse(job!.data)
  t.same(data, {
    workflow: 'order-paid',
    step: 'reserve',
    stepIndex: 0,
    run: runId(change, 'order-paid'),
    changeId: change,
    row: rowId('8b2f5c1e-3d4a-4f6b-9c7d-1a2b3c4d5e6f', 'public', 'orders', 'pk', ['1001']),
    table: 'public.orders',
    key: ['1001'],
    action: 'update',
    commitTimestamp: '2025-06-12T14:05:11.208733Z',
    results: {},
    change: raw,
  })
  t.equal(job!.ordered, true, 'ordered by default, by the primary key')
  t.equal(planned!.jobs[1]!.row, job!.row, 'both workflows share the row')
  t.same(planned!.version, ['24189630992', '1'])
})

t.test('job options are asked per workflow and step', async (t) => {
  const asked: string[] = []
  const opts: JobOptions = { step: (w, s) => { asked.push(`${w}/${s}`); return `{"w":"${w}"}` }, quarantine: '{}' }
  const plan = planBatch([fixture('batch-orders-update-paid.json')], workflows, opts, now)
  t.same(asked, ['order-paid/reserve', 'order-audit/record'])
  t.equal(plan.changes[0]!.jobs[1]!.opts, '{"w":"order-audit"}')
})

t.test('an unmatched valid change is counted', async (t) => {
  const plan = planBatch([fixture('batch-users-delete.json'), fixture('batch-orders-backfill-read.json')], workflows, options, now)
  t.equal(plan.unmatched, 2)
  t.same(plan.changes, [])
  t.same(plan.quarantine, [])
})

t.test('an invalid message is quarantined with its index and issues', async (t) => {
  const bad = { ...fixture('batch-orders-insert.json'), action: 'upsert' }
  const plan = planBatch([fixture('batch-orders-insert.json'), bad], workflows, options, now)
  t.equal(plan.changes.length, 1, 'the valid message is still planned')
  t.equal(plan.quarantine.length, 1)
  const [q] = plan.quarantine
  t.equal(q!.queue, 'quarantine')
  t.equal(q!.name, 'invalid-message')
  t.equal(q!.index, 1)
  t.equal(q!.opts, '{"attempts":1}')
  t.same(q!.issues.map((issue) => issue.path), ['action'])
  const data = JSON.parse(q!.data)
  t.same(data.message, bad, 'the original message is kept')
  t.equal(data.reason, 'invalid-message')
  t.equal(data.index, 1)
  t.equal(data.receivedAt, now.toISOString())
  t.same(data.issues, q!.issues)
})

t.test('non-object messages are quarantined too', async (t) => {
  const plan = planBatch(['text', null], workflows, options, now)
  t.same(plan.quarantine.map((q) => [q.name, q.index]), [['invalid-message', 0], ['invalid-message', 1]])
  t.equal(JSON.parse(plan.quarantine[0]!.data).message, 'text')
})

t.test('a when that throws quarantines the message as a routing error', async (t) => {
  const broken: Workflow = { ...audit, name: 'broken', when: () => { throw new Error('bad when') } }
  const raw = fixture('batch-orders-insert.json')
  const plan = planBatch([raw], [audit, broken], options, now)
  t.same(plan.changes, [], 'no workflow starts for that change')
  t.equal(plan.unmatched, 0)
  t.equal(plan.quarantine.length, 1)
  const [q] = plan.quarantine
  t.equal(q!.name, 'routing-error')
  t.equal(q!.index, 0)
  t.match(q!.issues, [{ path: 'workflow broken', message: /bad when/ }])
  t.same(JSON.parse(q!.data).message, raw)
})

t.test('the same invalid message gets the same quarantine job id', async (t) => {
  const bad = { action: 'insert', record: {} }
  const first = planBatch([bad, { ...bad }], workflows, options, now)
  const later = planBatch([{ ...bad }], workflows, options, new Date(now.getTime() + 60_000))
  t.equal(first.quarantine[0]!.id, first.quarantine[1]!.id)
  t.equal(later.quarantine[0]!.id, first.quarantine[0]!.id, 'across batches and times')
  const other = planBatch([{ ...bad, action: 'upsert' }], workflows, options, now)
  t.not(other.quarantine[0]!.id, first.quarantine[0]!.id)
  t.notMatch(first.quarantine[0]!.id, /:/)
})

t.test('updates with changes: {} mark their table', async (t) => {
  const plan = planBatch([
    fixture('batch-orders-update-default-replica-identity.json'),
    fixture('batch-orders-update-paid.json'),
    fixture('batch-orders-insert.json'),
  ], workflows, options, now)
  t.same([...plan.unknownChanges], [['public.orders', 1]], 'the table, and how many of its updates')
  t.same(plan.changes.map((c) => c.jobs.map((job) => job.queue)), [['order-audit'], ['order-paid', 'order-audit'], ['order-audit']],
    'order-paid cannot tell that status changed, the others still run')
})
