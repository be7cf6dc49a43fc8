import t from 'tap'
import { executions, failures, reset } from '../fixtures/jobs/_recorder.ts'
import { message } from '../helpers/stack.ts'
import { changeflow, envOf } from '../helpers/changeflow.ts'
import { cliOf, startService, waitFor } from '../helpers/service.ts'

const service = await startService()
t.teardown(() => service.close())
t.beforeEach(() => reset())
const cli = cliOf(service)
const home = `{${service.config.REDIS_PREFIX}}:_cf`
let lsn = 500_000
const ran = (key: string) => executions.filter((e) => e.workflow === 'ledger-apply' && e.key === key).map((e) => e.step)

/** Row `id` of ledger blocked: its first run fails for good at `apply`, a second run waits behind it. */
async function blockRow (id: number): Promise<void> {
  failures.set(`ledger-apply/${id}`, 1)
  await service.post({ data: [message('ledger', id, 'insert', lsn++)] })
  await service.post({ data: [message('ledger', id, 'update', lsn++)] })
  await waitFor(async () => (await cli('blocked', 'ledger-apply', '--table', 'ledger', '--key', String(id), '--json')).out.length === 1, 5_000, `row ${id} blocked`)
}

const scrape = async () => (await service.web.app.inject({ method: 'GET', url: '/metrics' })).body
const counted = (text: string, action: string) => Number(new RegExp(`^changeflow_operator_actions_total\\{action="${action}"\\} (\\d+)$`, 'm').exec(text)?.[1])

t.test('a row: blocked --table --key shows it; retry --table --key retries the run that blocks it', async (t) => {
  await blockRow(61)
  await blockRow(62)
  const one = await cli('blocked', '--table', 'public.ledger', '--key', '61', '--json')
  t.same(one.out.map((line) => JSON.parse(line).key), [['61']], 'only that row')
  const retried = await cli('retry', '--table', 'ledger', '--key', '61')
  t.equal(retried.code, 0, retried.stderr)
  t.match(retried.out, [/^retried ledger-apply job apply\.\S+: its run continues/, 'retried 1 of 1 runs'])
  await waitFor(() => ran('61').length === 5, 5_000, 'the retried run, then the next one')
  t.same((await cli('blocked', '--table', 'ledger', '--key', '62', '--json')).out.length, 1, 'the other row still blocked')
  const missing = await cli('retry', '--table', 'ledger', '--key', '61')
  t.same([missing.code, missing.stderr], [1, 'error: row ledger 61 is not blocked'])
})

t.test('a workflow: discard --all gives up every failed run; each action is counted for /metrics and logged', async (t) => {
  const before = await scrape()
  await blockRow(63)
  const discarded = await cli('discard', 'ledger-apply', '--all')
  t.equal(discarded.code, 0, discarded.stderr)
  t.match(discarded.out.at(-1), /^discarded (\d+) of \1 runs$/)
  const n = Number(/^discarded (\d+)/.exec(discarded.out.at(-1)!)![1])
  t.ok(n >= 2, 'rows 62 and 63 (and any other failed run of the workflow)')
  await waitFor(() => ran('63').length === 3, 5_000, 'row 63 moves on to its next run')
  t.same((await cli('blocked', 'ledger-apply', '--json')).out, [])
  t.same((await cli('retry', 'ledger-apply', '--all')).out, ['no failed runs of ledger-apply'])

  const after = await scrape()
  t.equal(counted(after, 'discard'), (counted(before, 'discard') || 0) + n, 'changeflow_operator_actions_total counts each discard')
  t.equal(counted(after, 'retry'), 1, 'and the retry of the test before')
  const log = await service.redis.xrevrange(`${home}:ops-log`, '+', '-', 'COUNT', 1)
  const flat = log[0]![1]
  const fields = Object.fromEntries(flat.filter((_, i) => i % 2 === 0).map((name, i) => [name, flat[2 * i + 1]]))
  t.match(fields, { action: 'discard', workflow: 'ledger-apply', jobId: /^apply\./, by: /@/, at: /^\d{4}-/ })
})

t.test('quarantine drop removes a message for good; --all every one', async (t) => {
  const invalid = [message('ledger', 71, 'upsert', lsn++), message('ledger', 72, 'merge', lsn++), message('ledger', 73, 'bogus', lsn++)]
  t.match((await service.post({ data: invalid })).json(), { quarantined: 3 })
  await waitFor(async () => (await service.queue('quarantine').getJobCounts('failed')).failed === 3, 5_000, 'three quarantined messages')
  const ids = (await cli('quarantine', '--json')).out.map((line) => JSON.parse(line).jobId)
  t.equal(ids.length, 3)
  const one = await cli('quarantine', 'drop', ids[0])
  t.same([one.code, one.out], [0, [`dropped ${ids[0]}: removed from the quarantine for good`]])
  t.equal(await service.queue('quarantine').getJob(ids[0]), undefined)
  // The README example, as typed.
  const all = await changeflow(['quarantine', 'drop', '--all'], envOf(service))
  t.equal(all.code, 0, all.stderr)
  t.match(all.stdout, /\n2 of 2 quarantined messages dropped: removed from the quarantine for good\n$/)
  t.same((await cli('quarantine')).out, ['no quarantined messages'])
  t.equal(counted(await scrape(), 'quarantine-drop'), 3)
  const again = await cli('quarantine', 'drop', ids[0])
  t.same([again.code, again.stderr], [1, `error: no quarantined message ${ids[0]}`])
})
