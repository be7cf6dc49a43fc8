import { spawn } from 'node:child_process'
import t from 'tap'
import { projectRoot } from '../../src/config.ts'
import { Layout } from '../../src/keys.ts'
import { runCli } from '../../src/cli/program.ts'
import { recordLayout } from '../../src/redis/layout.ts'
import { executions, failures, reset } from '../fixtures/jobs/_recorder.ts'
import { cliOf, fixtureMessages, startService, waitFor, withIdentity } from '../helpers/service.ts'

const service = await startService()
t.teardown(() => service.close())
t.beforeEach(() => reset())

/** Runs a command against the test service's Redis and prefix, collecting what it prints. */
const cli = cliOf(service)
const HINT = '(changeflow --help lists the commands; changeflow <command> --help shows one)'

const template = fixtureMessages('batch-orders-update-paid')[0]!
let lsn = 300_000
function change (id: number, action = 'update') {
  const message = withIdentity(template, lsn++) as Record<string, unknown> & { record: Record<string, unknown>, metadata: Record<string, unknown> }
  message.action = action
  message.metadata.table_name = 'ledger'
  message.metadata.record_pks = [String(id)]
  message.record = { id }
  return message
}
const ran = (key: string) => executions.filter((e) => e.workflow === 'ledger-apply' && e.key === key).map((e) => e.step)

/** Row `id` of ledger: its first run fails for good at `apply`, a second run waits behind it. */
async function blockRow (id: number): Promise<string> {
  failures.set(`ledger-apply/${id}`, 1)
  await service.post({ data: [change(id, 'insert')] })
  await service.post({ data: [change(id)] })
  let jobId: string | undefined
  await waitFor(async () => {
    const { out } = await cli('blocked', '--json')
    jobId = out.map((line) => JSON.parse(line)).find((row) => row.key[0] === String(id))?.jobId
    return jobId !== undefined
  }, 5_000, `row ${id} blocked`)
  return jobId!
}

t.test('blocked lists the row with its error; retry runs the step again, then the next run', async (t) => {
  const jobId = await blockRow(41)

  const table = await cli('blocked')
  t.equal(table.code, 0)
  t.match(table.out[0], /^WORKFLOW +STEP +TABLE +KEY +ACTION +COMMITTED +BLOCKED +WHY +WAITING +JOB +ERROR$/)
  t.equal(table.out.length, 2, 'one blocked row')
  t.match(table.out[1], /^ledger-apply +apply +public\.ledger +41 +insert +\S+ +\d{4}-\d\d-\d\dT\S+Z +failed +1 +apply\.\S+ +refused \(0 more\)$/)
  t.match(table.out[1], jobId)

  const json = await cli('blocked', '--json')
  t.match(JSON.parse(json.out[0]!), { reason: 'failed', state: 'failed', workflow: 'ledger-apply', step: 'apply', table: 'public.ledger', key: ['41'], action: 'insert', error: 'refused (0 more)', waiting: 1, jobId })

  const retried = await cli('retry', 'ledger-apply', jobId)
  t.equal(retried.code, 0, retried.stderr)
  t.match(retried.stdout, `retried ledger-apply job ${jobId}`)
  await waitFor(() => ran('41').length === 5, 5_000, 'the retried run, then the next one')
  t.same(ran('41'), ['apply', 'apply', 'confirm', 'apply', 'confirm'])
  t.same((await cli('blocked')).out, ['no blocked rows'])
  t.same((await cli('blocked', '--json')).out, [], 'JSON lines: none')

  const again = await cli('retry', 'ledger-apply', jobId)
  t.equal(again.code, 1, 'a step that is no longer failed is not retried')
  t.match(again.stderr, /^error: job \S+ in ledger-apply is completed: only a failed step can be retried$/)
})

t.test('discard gives the failed run up and the row moves on', async (t) => {
  const jobId = await blockRow(42)
  const discarded = await cli('discard', 'ledger-apply', jobId)
  t.equal(discarded.code, 0, discarded.stderr)
  t.match(discarded.stdout, `discarded ledger-apply job ${jobId} (discarded)`)
  await waitFor(() => ran('42').length === 3, 5_000, 'the next run of row 42')
  t.same(ran('42'), ['apply', 'apply', 'confirm'])
  t.equal(await service.queue('ledger-apply').getJob(jobId), undefined, 'the job is gone')

  const again = await cli('discard', 'ledger-apply', jobId)
  t.equal(again.code, 1)
  t.equal(again.stderr, `error: no job ${jobId} in ledger-apply`)
})

t.test('retry and discard fail (1) on unknown workflows and jobs', async (t) => {
  const unknown = await cli('retry', 'no-such-flow', 'apply.x')
  t.equal(unknown.code, 1)
  t.match(unknown.stderr, /^error: no workflow "no-such-flow" has ever had work in this Redis \(known: .*ledger-apply.*\)$/)
  t.match((await cli('discard', 'quarantine', 'q.x')).stderr, 'redriven with `redrive`')
  const missing = await cli('retry', 'ledger-apply', 'apply.nothing')
  t.same([missing.code, missing.stderr], [1, 'error: no job apply.nothing in ledger-apply'])
})

t.test('quarantine lists invalid messages; redrive re-ingests them', async (t) => {
  const queue = service.queue('quarantine')
  const empty = await cli('quarantine')
  t.same([empty.code, empty.out], [0, ['no quarantined messages']])
  t.same((await cli('redrive', '--all')).out, ['no quarantined messages'])

  const invalid = change(43, 'upsert')
  const stillInvalid = { ...change(44), action: 'merge' }
  t.match((await service.post({ data: [change(45, 'insert'), invalid, stillInvalid] })).json(), { quarantined: 2 })
  await waitFor(async () => (await queue.getJobCounts('failed')).failed === 2, 5_000, 'two quarantined messages')

  const table = await cli('quarantine')
  t.equal(table.code, 0)
  t.match(table.out[0], /^JOB +REASON +INDEX +RECEIVED +ERROR$/)
  t.equal(table.out.length, 3)
  const line = table.out.find((text) => / 1 /.test(text))
  t.match(line, /^q\.\S+ +invalid-message +1 +\d{4}-\d\d-\d\dT\S+Z +invalid-message: action/)

  const json = (await cli('quarantine', '--json')).out.map((text) => JSON.parse(text))
  const entry = json.find((message) => message.index === 1)
  t.match(entry, { reason: 'invalid-message', index: 1, receivedAt: String, error: /action/ })
  t.ok(line!.startsWith(entry.jobId))

  // The operator fixes the stored message, then redrives it: it goes through ingestion again.
  const job = (await queue.getJob(entry.jobId))!
  await job.updateData({ ...job.data, message: { ...invalid, action: 'insert' } })
  const one = await cli('redrive', entry.jobId)
  t.equal(one.code, 0, one.stderr)
  t.match(one.stdout, `redriven ${entry.jobId}: a worker re-ingests it`)
  await waitFor(() => ran('43').length === 2, 5_000, 'the redriven change to run')
  t.equal(await queue.getJobState(entry.jobId), 'completed')
  t.equal((await cli('redrive', entry.jobId)).code, 1, 'a redriven message is no longer quarantined')

  // --all: the other one is still invalid, so it comes back to quarantine.
  const other = json.find((message) => message.index === 2)
  const all = await cli('redrive', '--all')
  t.equal(all.code, 0, all.stderr)
  t.same(all.out, [`redriven ${other.jobId}`, '1 of 1 quarantined messages redriven: a worker re-ingests it (validation, routing, dedup); if still invalid it returns to quarantine'])
  await waitFor(async () => (await queue.getJob(other.jobId))!.attemptsMade === 2 && (await queue.getJobState(other.jobId)) === 'failed', 5_000, 'the second attempt')
  t.same((await cli('quarantine', '--json')).out.map((text) => JSON.parse(text).jobId), [other.jobId])
})

t.test('usage errors exit 2 with a one-line error and a pointer to --help', async (t) => {
  const cases: Array<[string[], string]> = [
    [['nope'], "unknown command 'nope'"],
    [['retry'], 'retry needs <workflow> <jobId>, <workflow> --all, or --table <table> --key <value...>'],
    [['discard', 'ledger-apply'], 'discard needs <workflow> <jobId>, <workflow> --all, or --table <table> --key <value...>'],
    [['discard', 'ledger-apply', 'x', '--all'], 'discard needs <workflow> <jobId>, <workflow> --all, or --table <table> --key <value...>'],
    [['retry', '--table', 'ledger'], 'a row is named by both --table and --key'],
    [['retry', 'ledger-apply', 'a', 'b'], "too many arguments for 'retry'. Expected 2 arguments but got 3."],
    [['blocked', 'a', 'extra'], "too many arguments for 'blocked'. Expected 1 argument but got 2."],
    [['quarantine', 'drop'], 'quarantine drop needs one job id or --all (not both)'],
    [['blocked', '--bogus'], "unknown option '--bogus'"],
    [['quarantine', '--all'], "unknown option '--all'"],
    [['redrive'], 'redrive needs one job id or --all (not both)'],
    [['redrive', 'q.x', '--all'], 'redrive needs one job id or --all (not both)'],
    [['redrive', 'q.x', 'q.y'], "too many arguments for 'redrive'. Expected 1 argument but got 2."],
  ]
  for (const [argv, message] of cases) {
    const result = await cli(...argv)
    t.same([result.code, result.err, result.out], [2, [`error: ${message}`, HINT], []], argv.join(' '))
  }
  const none = await cli()
  t.same([none.code, none.out], [2, []], 'no command: the usage, on stderr')
  t.match(none.stderr, /^Usage: changeflow \[options\] \[command\]/)
  for (const argv of [['help'], ['--help'], ['-h']]) {
    const help = await cli(...argv)
    t.same([help.code, help.err], [0, []], argv.join(' '))
    for (const command of ['send', 'blocked', 'retry', 'discard', 'quarantine', 'redrive', 'layout', 'help']) t.match(help.stdout, `\n  ${command} `)
    t.match(help.stdout, /Exit codes:\n {2}0 {2}done\n {2}1 {2}something is wrong/)
  }
  for (const command of ['blocked', 'retry', 'discard', 'orphans', 'discard-workflow', 'quarantine', 'redrive', 'layout', 'send']) {
    const help = await cli(command, '--help')
    t.same([help.code, help.err], [0, []], `${command} --help`)
    t.match(help.stdout, `Usage: changeflow ${command} `)
    t.same((await cli('help', command)).stdout, help.stdout, `help ${command}`)
  }
})

/** The installed command as an operator types it (`npx changeflow …`, or the `npm run cli --` alias); no Redis is needed for these. */
function shell (command: 'npx' | 'npm', ...args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const argv = command === 'npx' ? ['changeflow', ...args] : ['run', 'cli', '--', ...args]
  const child = spawn(command, argv, {
    cwd: projectRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', REDIS_URL: 'redis://127.0.0.1:1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => { stdout += chunk })
  child.stderr.on('data', (chunk) => { stderr += chunk })
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })))
}

t.test('npx changeflow and npm run cli: help exits 0, an unknown command exits 2', async (t) => {
  const [help, nope, alias] = await Promise.all([shell('npx', 'help'), shell('npx', 'nope'), shell('npm', 'retry', '--help')])
  t.equal(help.code, 0, help.stderr)
  t.match(help.stdout, /^Usage: changeflow \[options\] \[command\]/)
  t.equal(nope.code, 2)
  t.equal(nope.stderr, `error: unknown command 'nope'\n${HINT}\n`)
  t.equal(alias.code, 0, alias.stderr)
  t.match(alias.stdout, 'Usage: changeflow retry [options] [workflow] [jobId]')
})

t.test('an unreachable Redis is reported in one line, exit 1', async (t) => {
  const result = await shell('npx', 'quarantine')
  t.equal(result.code, 1)
  t.match(result.stderr, /^error: cannot reach Redis: connect ECONNREFUSED 127\.0\.0\.1:1$/m)
  t.notMatch(result.stderr, /\n\s+at /, 'no stack traces')
})

t.test('layout shows the recorded shard count; --reset forgets it only once every queue is drained', async (t) => {
  // A keyspace of its own: the other tests leave quarantined messages behind.
  const own = await startService()
  t.teardown(() => own.close())
  const run = async (...argv: string[]) => {
    const out: string[] = []
    const err: string[] = []
    const code = await runCli(argv, { config: own.config, redis: own.redis, out: (line) => out.push(line), err: (line) => err.push(line) })
    return { code, stdout: out.join('\n'), stderr: err.join('\n') }
  }
  // The service recorded its layout as it started (its first Redis check).
  await waitFor(async () => (await run('layout')).stdout.startsWith('{'), 5_000, 'the layout recorded')
  t.match(JSON.parse((await run('layout')).stdout), { shards: 1, tags: [own.config.REDIS_PREFIX] })
  await t.rejects(recordLayout(own.redis, new Layout(own.config.REDIS_PREFIX, 2)), { name: 'LayoutError' }, 'another count is refused')

  failures.set('ledger-apply/46', 1)
  await own.post({ data: [change(46, 'insert')] })
  const queue = own.queue('ledger-apply')
  await waitFor(async () => (await queue.getJobCounts('failed')).failed === 1, 5_000, 'a failed step: work the keyspace still holds')
  const refused = await run('layout', '--reset')
  t.equal(refused.code, 1)
  t.match(refused.stderr, /still holds work \(ledger-apply: 1\)/)
  const [failed] = await queue.getJobs(['failed'])
  t.equal((await run('discard', 'ledger-apply', failed!.id!)).code, 0)
  await own.worker?.close() // the operator stopped every process, as the procedure says
  await own.web.close()
  const reset = await run('layout', '--reset')
  t.equal(reset.code, 0, reset.stderr)
  t.match((await run('layout')).stdout, /^no layout recorded yet/)
  t.equal(await own.redis.exists(`{${own.config.REDIS_PREFIX}}:_cf:tripwire`), 0, 'and its marks: a new layout starts from nothing')
  await recordLayout(own.redis, new Layout(own.config.REDIS_PREFIX, 2))
  t.match(JSON.parse((await run('layout')).stdout), { shards: 2 }, 'a new count can be recorded')
})
