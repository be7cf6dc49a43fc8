import t from 'tap'
import { executions, failures, reset } from '../fixtures/jobs/_recorder.ts'
import { cliOf, startService, waitFor } from '../helpers/service.ts'
import { orderPaid } from '../helpers/stack.ts'

const service = await startService()
t.teardown(() => service.close())
t.beforeEach(() => reset())
const cli = cliOf(service)

t.test('trace shows a row whose step failed for good: its changes, runs, steps and what it waits on', async (t) => {
  failures.set('order-flow/42', 1) // step two refuses once: the bug
  t.match((await service.post({ data: [orderPaid(42, 8_100_001)] })).json(), { accepted: 1 })
  t.match((await service.post({ data: [orderPaid(42, 8_100_002)] })).json(), { accepted: 1 })
  await waitFor(async () => (await service.queue('order-flow').getJobCounts('failed')).failed === 1, 5_000, 'step two to fail')

  const json = await cli('trace', 'orders', '42', '--json')
  t.equal(json.code, 0, json.stderr)
  const trace = JSON.parse(json.stdout)
  t.equal(trace.changes.length, 2, 'both changes of the row')
  const [first, second] = trace.changes
  t.match(first, { action: 'update', table: 'public.orders', key: ['42'], commit: { lsn: '8100001', idx: '0' } })
  t.match(first.runs, [{ workflow: 'order-flow', state: 'failed', late: false }])
  t.match(first.runs[0].steps, [
    { step: 'one', state: 'completed', attempts: 1, result: { n: 1 } },
    { step: 'two', state: 'failed', attempts: 1, error: 'refused (0 more)' },
    { step: 'three', state: 'not started', attempts: 0 },
  ])
  t.match(second.runs, [{ workflow: 'order-flow', state: 'waiting its turn', steps: [{ step: 'one', state: 'not started' }] }])
  t.equal(trace.rows.length, 1, 'one row: the primary key')
  t.match(trace.rows[0], {
    queued: 2,
    head: { workflow: 'order-flow', step: 'two', state: 'failed', error: 'refused (0 more)' },
    blocked: { reason: 'failed' },
    waitingOn: /^order-flow step two failed for good \(refused \(0 more\)\): retry or discard job two\.\S+ \(1 run of the row wait behind it\)$/,
  })

  const text = await cli('trace', 'public.orders', '42')
  t.equal(text.code, 0)
  t.equal(text.out[0], 'public.orders [42]: 2 journalled changes')
  t.match(text.out[1], /^ACCEPTED +ACTION +COMMITTED +POSITION +WORKFLOW +RUN +STEP +STATE +ATTEMPTS +RESULT \/ ERROR$/)
  t.match(text.out[2], /^\S+Z +update +\S+Z +8100001:0 +order-flow +failed +one +completed +1 +\{"n":1\}$/)
  t.match(text.out[3], /^ +two +failed +1 +refused \(0 more\)$/)
  t.match(text.out.at(-1), /^waiting on: order-flow step two failed for good/)

  // The operator retries (the bug is fixed): the row moves on and trace says so.
  await cli('retry', 'order-flow', trace.rows[0].head.jobId)
  await waitFor(() => executions.filter((e) => e.key === '42' && e.step === 'three').length === 2, 5_000, 'both runs to finish')
  const after = JSON.parse((await cli('trace', 'orders', '42', '--json')).stdout)
  t.same(after.changes.map((change: { runs: Array<{ state: string }> }) => change.runs[0]!.state), ['finished', 'finished'])
  t.match(after.changes[0].runs[0].steps[1], { step: 'two', state: 'completed', attempts: 1, result: { n: 2 } }, 'retried with fresh attempts')
  t.match(after.rows[0], { queued: 0, waitingOn: 'nothing: no run of the row waits or runs' })
  t.notOk(after.rows[0].blocked)
})

t.test('trace of a row the journal does not hold exits 1; a missing key is a usage error', async (t) => {
  const none = await cli('trace', 'orders', '4242')
  t.equal(none.code, 1)
  t.same(none.out, ['orders [4242]: 0 journalled changes'])
  t.match(none.stderr, /^error: the journal holds no change of orders \[4242\] from the last 604800 s$/)
  const schema = await cli('trace', 'other.orders', '42')
  t.equal(schema.code, 1, 'a schema is matched too')
  const usage = await cli('trace', 'orders')
  t.equal(usage.code, 2)
  t.match(usage.stderr, /^error: missing required argument 'key'/)
})
