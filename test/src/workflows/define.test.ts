import { UnrecoverableError } from 'bullmq'
import t from 'tap'
import { defineWorkflow, PermanentError, type Workflow } from '../../../src/workflows/define.ts'

function valid (): Workflow {
  return {
    name: 'order-paid-2',
    table: 'public.orders',
    on: ['update', 'read'],
    when: (change) => change.changed('status'),
    steps: [
      { name: 'reserve', run: () => 1, attempts: 3, backoff: { type: 'fixed', delay: 100 } },
      { name: 'ship', run: () => 2 },
    ],
  }
}

function mutated (patch: (workflow: Record<string, any>) => void): Workflow {
  const workflow = valid() as unknown as Record<string, any>
  workflow.steps = workflow.steps.map((step: object) => ({ ...step }))
  patch(workflow)
  return workflow as unknown as Workflow
}

t.test('a valid workflow is returned as is', async (t) => {
  const workflow = valid()
  t.equal(defineWorkflow(workflow), workflow)
  const minimal: Workflow = { name: 'a', table: 'orders', on: ['insert'], steps: [{ name: '1', run: () => null }] }
  t.equal(defineWorkflow(minimal), minimal)
})

t.test('invalid workflows throw, naming the problem', async (t) => {
  const cases: Array<[string, (workflow: Record<string, any>) => void, RegExp]> = [
    ['uppercase name', (w) => { w.name = 'OrderPaid' }, /^name: workflow names are/],
    ['name with a colon', (w) => { w.name = 'order:paid' }, /^name: /],
    ['empty name', (w) => { w.name = '' }, /^name: /],
    ['name starting with a dash', (w) => { w.name = '-paid' }, /^name: /],
    ['name over 63 characters', (w) => { w.name = 'a'.repeat(64) }, /^name: /],
    ['reserved name', (w) => { w.name = 'quarantine' }, /^name: this name is reserved/],
    ['no steps', (w) => { w.steps = [] }, /steps: a workflow needs at least one step/],
    ['duplicate step names', (w) => { w.steps[1].name = 'reserve' }, /steps: step names must be unique/],
    ['bad step name', (w) => { w.steps[1].name = 'Ship_It' }, /steps\.1\.name: step names are/],
    ['step without run', (w) => { delete w.steps[0].run }, /steps\.0\.run: run must be a function/],
    ['unknown action', (w) => { w.on = ['update', 'upsert'] }, /^on\.1: /],
    ['empty on', (w) => { w.on = [] }, /^on: on lists at least one action/],
    ['unknown top-level key', (w) => { w.retries = 3 }, /retries/],
    ['attempts 0', (w) => { w.steps[0].attempts = 0 }, /steps\.0\.attempts: /],
    ['fractional attempts', (w) => { w.steps[0].attempts = 1.5 }, /steps\.0\.attempts: /],
    ['unknown backoff type', (w) => { w.steps[0].backoff = { type: 'linear', delay: 1 } }, /steps\.0\.backoff\.type: /],
    ['when not a function', (w) => { w.when = true }, /^when: when must be a function/],
    ['table with two dots', (w) => { w.table = 'a.b.c' }, /^table: /],
    ['empty table', (w) => { w.table = '' }, /^table: /],
  ]
  for (const [label, patch, message] of cases) {
    t.throws(() => defineWorkflow(mutated(patch)), { message }, label)
  }
})

t.test('PermanentError', async (t) => {
  const error = new PermanentError('card declined')
  t.type(error, UnrecoverableError, 'BullMQ does not retry it')
  t.type(error, Error)
  t.equal(error.name, 'PermanentError')
  t.equal(error.message, 'card declined')
})
