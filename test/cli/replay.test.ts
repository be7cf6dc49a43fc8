import t from 'tap'
import { defineWorkflow } from '../../src/workflows/define.ts'
import { loadWorkflows } from '../../src/workflows/load.ts'
import { Layout } from '../../src/keys.ts'
import { replay } from '../../src/operations/replay-command.ts'
import { executions, failures, hold, release, reset } from '../fixtures/jobs/_recorder.ts'
import { cliOf, startService, waitFor } from '../helpers/service.ts'
import { message, orderPaid, sleep } from '../helpers/stack.ts'

const service = await startService()
t.teardown(() => service.close())
t.beforeEach(() => reset())
const cli = cliOf(service)
const report = async (...argv: string[]) => {
  const run = await cli('replay', ...argv, '--json')
  return { code: run.code, stderr: run.stderr, ...JSON.parse(run.out.at(-1) ?? '{}') }
}
const ran = (workflow: string, key: string) => executions.filter((e) => e.workflow === workflow && e.key === key)

t.test('after a bug fix, replay --force runs a status-transition workflow again, once; safe replays and the same generation run nothing', async (t) => {
  failures.set('order-flow/50', 1) // the bug: step two refuses
  t.match((await service.post({ data: [orderPaid(50, 7_100_001)] })).json(), { accepted: 1 })
  await waitFor(async () => (await service.queue('order-flow').getJobCounts('failed')).failed === 1, 5_000, 'step two to fail')
  const [failed] = await service.queue('order-flow').getJobs(['failed'])
  t.equal((await cli('discard', 'order-flow', failed!.id!)).code, 0, 'the operator gives the run up')
  const original = ran('order-flow', '50').map((e) => e.idempotencyKey)
  t.equal(original.length, 2, 'one and two ran')

  // The fix is deployed (no more refusals). Without --force nothing that ran runs again.
  const dry = await cli('replay', '--table', 'orders', '--key', '50', '--dry-run')
  t.same([dry.code, dry.out], [0, [
    'dry run: replay without --force: only runs the changes never had start',
    'selected 1 journalled changes: 1 runs (0 changes start none of the selected workflows now)',
    '  already there (finished, running, waiting or failed), not started again: 1',
    '  would start: 0',
  ]], 'the README\'s session')
  t.match(await report('--table', 'orders', '--key', '50', '--dry-run'), { code: 0, generation: 0, dryRun: true, selected: 1, runs: 1, existing: 1 })
  t.match(await report('--table', 'orders', '--key', '50', '--wait', '2s'), { code: 0, generation: 0, selected: 1, existing: 1, enqueued: 0 })

  t.match(await report('--table', 'orders', '--key', '50', '--force', '--dry-run'), { generation: 1, selected: 1, runs: 1, existing: 0 }, 'a dry run takes no generation')
  const forced = await report('--table', 'orders', '--key', '50', '--force', '--wait', '10s')
  t.match(forced, { code: 0, generation: 1, selected: 1, runs: 1, existing: 0, enqueued: 1, finished: 1, failed: 0, unfinished: 0 }, forced.stderr)
  const steps = ran('order-flow', '50')
  t.same(steps.map((e) => e.step), ['one', 'two', 'one', 'two', 'three'], 'every step of the run again, once')
  const replayed = steps.slice(2).map((e) => e.idempotencyKey)
  t.equal(new Set([...original, ...replayed]).size, 5, 'new idempotency keys: the provider sees new requests')
  t.same(steps[4]!.results, { one: { n: 1 }, two: { n: 2 } }, 'the replayed run\'s own results')

  const traced = JSON.parse((await cli('trace', 'orders', '50', '--json')).stdout)
  t.match(traced.changes[0].runs, [
    { workflow: 'order-flow', state: 'discarded', steps: [{ state: 'completed' }, { state: 'not run (discarded)' }, { state: 'not run (discarded)' }] },
    { workflow: 'order-flow', replay: 1, state: 'finished' },
  ], 'trace shows the change\'s own run and the replay\'s')

  // Resuming generation 1 (an interrupted replay run again) starts nothing twice.
  t.match(await report('--table', 'orders', '--key', '50', '--force', '--generation', '1', '--wait', '2s'), { code: 0, generation: 1, existing: 1, enqueued: 0 })
  t.match(await report('--table', 'orders', '--key', '50', '--wait', '2s'), { generation: 0, enqueued: 0 })
  await sleep(300)
  t.equal(ran('order-flow', '50').length, 5, 'nothing ran twice')
  const unknown = await cli('replay', '--force', '--all', '--generation', '9')
  t.same([unknown.code, unknown.stderr], [1, 'error: no replay generation 9 was started (the last is 1)'])
})

t.test('a replayed run joins its row behind live runs, and is late when the row has moved on', async (t) => {
  t.match((await service.post({ data: [message('ledger', 60, 'insert', 7_200_001)] })).json(), { accepted: 1 })
  await waitFor(() => ran('ledger-apply', '60').length === 2, 5_000, 'the insert\'s run')
  hold('ledger-apply/60')
  t.match((await service.post({ data: [message('ledger', 60, 'update', 7_200_002)] })).json(), { accepted: 1 })
  await waitFor(() => ran('ledger-apply', '60').length === 3, 5_000, 'the update\'s run to start, held')

  const forced = await report('--workflow', 'ledger-apply', '--table', 'ledger', '--key', '60', '--action', 'insert', '--force', '--wait', '0')
  t.match(forced, { code: 0, selected: 1, runs: 1, enqueued: 1, late: 1 })
  await sleep(300)
  t.equal(ran('ledger-apply', '60').length, 3, 'the replayed run waits behind the held live run')
  release('ledger-apply/60')
  await waitFor(() => ran('ledger-apply', '60').length === 6, 5_000, 'both runs')
  t.same(ran('ledger-apply', '60').map((e) => [e.step, e.lsn, e.late]), [
    ['apply', 7_200_001, false], ['confirm', 7_200_001, false],
    ['apply', 7_200_002, false], ['confirm', 7_200_002, false],
    ['apply', 7_200_001, true], ['confirm', 7_200_001, true],
  ], 'in row order; the replayed change is older than the row\'s newest: late')
})

t.test('replay selects by workflow, table, action, key and commit-time window', async (t) => {
  const at = (lsn: number, id: number, action: string, time: string) => {
    const m = message('ledger', id, action, lsn)
    m.metadata.commit_timestamp = time
    return m
  }
  t.match((await service.post({ data: [at(7_300_001, 70, 'insert', '2026-01-01T10:00:00Z'), at(7_300_002, 71, 'insert', '2026-01-01T12:00:00Z')] })).json(), { accepted: 2 })
  t.match((await service.post({ data: [at(7_300_003, 71, 'update', '2026-01-01T12:30:00Z')] })).json(), { accepted: 1 })
  const dry = (...argv: string[]) => report('--dry-run', '--table', 'public.ledger', ...argv)
  t.match(await dry('--from', '2026-01-01T11:00:00Z'), { selected: 2, runs: 3 }, 'the update starts ledger-apply and ledger-audit')
  t.match(await dry('--from', '2026-01-01T11:00:00Z', '--to', '2026-01-01T12:00:00Z'), { selected: 1, runs: 1 })
  t.match(await dry('--from', '2026-01-01T09:00:00Z', '--action', 'insert'), { selected: 2, runs: 2 })
  t.match(await dry('--from', '2026-01-01T09:00:00Z', '--key', '71'), { selected: 2 })
  t.match(await dry('--from', '2026-01-01T09:00:00Z', '--workflow', 'ledger-audit'), { selected: 3, runs: 1, unmatched: 2 })
  t.match(await report('--dry-run', '--table', 'other.ledger'), { selected: 0 }, 'a schema must match')
  const help = await cli('replay', '--help')
  t.equal(help.code, 0)
  t.match(help.stdout, /--force +a new replay generation/)
  const bad = await cli('replay', '--from', 'yesterday')
  t.equal(bad.code, 2)
  t.match(bad.stderr, /^error: --from takes an ISO time/)
})

t.test('a replay without --force starts the runs a change never had: a workflow added since', async (t) => {
  t.match((await service.post({ data: [message('ledger', 80, 'insert', 7_400_001)] })).json(), { accepted: 1 })
  await waitFor(() => ran('ledger-apply', '80').length === 2, 5_000, 'its run')
  const added = defineWorkflow({ name: 'ledger-added', table: 'ledger', on: ['insert'], steps: [{ name: 'note', run: () => {} }] })
  const workflows = [...await loadWorkflows(service.config.JOBS_DIR), added]
  const out: string[] = []
  const ctx = { config: service.config, redis: service.redis, layout: new Layout(service.config.REDIS_PREFIX), out: (line: string) => out.push(line), err: () => {}, workflows: async () => workflows }
  const { code, data } = await replay(ctx, { table: 'ledger', key: ['80'], force: false, dryRun: false, json: false, waitMs: 0 })
  t.equal(code, 0)
  t.match(data, { generation: 0, selected: 1, runs: 2, existing: 1, enqueued: 1 })
  t.equal(await service.queue('ledger-added').count(), 1, 'the new workflow\'s run is queued (no worker runs it here)')
  t.equal(ran('ledger-apply', '80').length, 2, 'the run it had is not run again')
  t.match(out, ['replay without --force: only runs the changes never had start', /^selected 1 journalled changes: 2 runs/, /already there .*: 1$/, /^ {2}enqueued: 1 \(0 late/])
})

t.test('a generation run again with another selection starts the runs it had not, and nothing twice', async (t) => {
  t.match((await service.post({ data: [message('ledger', 90, 'update', 7_500_001)] })).json(), { accepted: 1 })
  await waitFor(() => ran('ledger-apply', '90').length === 2 && ran('ledger-audit', '90').length === 1, 5_000, 'its runs')
  const select = ['--table', 'ledger', '--key', '90']
  const first = await report(...select, '--workflow', 'ledger-apply', '--force', '--wait', '5s')
  t.match(first, { code: 0, runs: 1, enqueued: 1, finished: 1 }, 'ledger-apply only')
  const generation = String(first.generation)
  const second = await report(...select, '--workflow', 'ledger-audit', '--force', '--generation', generation, '--wait', '5s')
  t.match(second, { code: 0, generation: first.generation, runs: 1, existing: 0, enqueued: 1, notStarted: 0, finished: 1 }, 'ledger-audit joins the generation')
  const both = await report(...select, '--force', '--generation', generation, '--wait', '2s')
  t.match(both, { code: 0, runs: 2, existing: 2, enqueued: 0 }, 'the whole change: both runs are there')
  await sleep(300)
  t.same([ran('ledger-apply', '90').length, ran('ledger-audit', '90').length], [4, 2], 'each run of the generation once')
})

t.test('a commit-time window is an ISO time with its offset, or a duration ago; anything else is a usage error', async (t) => {
  t.match((await service.post({ data: [message('ledger', 95, 'insert', 7_600_001)] })).json(), { accepted: 1 })
  for (const text of ['hello 2020', 'yesterday 10', '-5', 'Dec 1', '2026-02-30T00:00:00Z', '2026-12-01T10:00:00', '2026-12-01']) {
    const run = await cli('replay', '--from', text, '--dry-run')
    t.same([run.code, run.out], [2, []], `--from "${text}": nothing done`)
    t.match(run.stderr, /^error: --from takes an ISO time with its offset \(2026-12-01T10:00:00Z\) or a duration ago/)
  }
  t.match(await report('--dry-run', '--key', '95', '--from', '2025-06-12T16:00:00+02:00', '--to', '2025-06-12T14:03:27.512304Z'), { code: 0, selected: 1 }, 'offsets and fractions of a second')
  const reversed = await cli('replay', '--from', '2026-01-02T00:00:00Z', '--to', '2026-01-01T00:00:00Z', '--force')
  t.same([reversed.code, reversed.out], [2, []])
  t.match(reversed.stderr, /^error: --from is after --to/)
})

t.test('with the journal off (JOURNAL_RETENTION=0) a replay says so, exits 1 and takes no generation', async (t) => {
  const off = await startService({ workers: false, env: { JOURNAL_RETENTION: '0', REDIS_PREFIX: service.config.REDIS_PREFIX } })
  t.teardown(() => off.close())
  const before = await service.redis.get(new Layout(service.config.REDIS_PREFIX).home.replayGeneration())
  for (const argv of [['--dry-run'], ['--force', '--all', '--wait', '0']]) {
    const run = await cliOf(off)('replay', ...argv)
    t.same([run.code, run.out, run.stderr], [1, [], 'error: the change journal is off here (JOURNAL_RETENTION=0): there is nothing to replay'], argv.join(' '))
  }
  t.equal(await service.redis.get(new Layout(service.config.REDIS_PREFIX).home.replayGeneration()), before, 'no generation was taken')
})

t.test('an action replay does not know, --generation without --force, or --force with nothing selected and no --all, is a usage error; so is a workflow JOBS_DIR does not define', async (t) => {
  const layout = new Layout(service.config.REDIS_PREFIX)
  const before = await service.redis.get(layout.home.replayGeneration())
  const usage = async (argv: string[], error: RegExp) => {
    const run = await cli('replay', ...argv)
    t.same([run.code, run.out], [2, []], argv.join(' '))
    t.match(run.stderr, error)
  }
  await usage(['--action', 'upsert', '--dry-run'], /^error: --action takes insert, update, delete or read; got "upsert"/)
  await usage(['--action', 'insert,UPDATE', '--force'], /^error: --action takes insert, update, delete or read; got "UPDATE"/)
  await usage(['--generation', '1'], /^error: --generation names a forced replay: add --force/)
  // The whole journal again, under new idempotency keys, only when said so.
  await usage(['--force'], /^error: a forced replay with no selection runs every journalled change's workflows again, each step under a new idempotency key \(a second charge, a second email\): select changes \(--workflow, --table, --action, --key, --from, --to\), or say --all/)
  await usage(['--force', '--generation', '1', '--wait', '0'], /^error: a forced replay with no selection/)
  const unknown = await cli('replay', '--workflow', 'ledger-apply,ledger-aply', '--force')
  t.same([unknown.code, unknown.out, unknown.stderr], [1, [], 'error: no workflow of JOBS_DIR is named ledger-aply: a replay runs the workflows defined there'])
  t.equal(await service.redis.get(layout.home.replayGeneration()), before, 'no generation was taken')
})
