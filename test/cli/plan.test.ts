import { Readable } from 'node:stream'
import t from 'tap'
import { changeflow, envOf, listen } from '../helpers/changeflow.ts'
import { cliOf, fixture, startService, withIdentity } from '../helpers/service.ts'

const service = await startService({ workers: false })
t.teardown(() => service.close())
const { url } = await listen(service)
const cli = cliOf(service)

t.test('the README example: every change of the body, its workflows and job ids; duplicates once accepted', async (t) => {
  const result = await changeflow(['plan', 'test/fixtures/batch-mixed-orders-users.json'], envOf(service))
  t.equal(result.code, 0, result.stderr)
  const lines = result.stdout.trimEnd().split('\n')
  t.match(lines[0], /^# +OUTCOME +TABLE +ACTION +WORKFLOW +RUN +JOBS$/)
  t.match(lines.find((line) => / order-flow /.test(line)), /^0 +accepted +public\.orders +update +order-flow +start +one\.\S+ two\.\S+ three\.\S+$/)
  t.match(lines.find((line) => / user-signup /.test(line)), /^2 +accepted +public\.users +insert +user-signup +start +greet\.\S+$/)
  t.match(lines.at(-1), /^dry run: the webhook would answer 200 \(2 accepted, 0 duplicates, 2 unmatched, 0 quarantined\); nothing was enqueued$/)
  t.equal((await service.queue('order-flow').getJobCounts('waiting')).waiting, 0, 'nothing enqueued')

  t.equal((await service.post(fixture('batch-mixed-orders-users'))).statusCode, 200)
  const again = await cli('plan', 'test/fixtures/batch-mixed-orders-users.json', '--json')
  t.equal(again.code, 0, again.stderr)
  t.match(JSON.parse(again.stdout).counts, { accepted: 0, duplicates: 2, unmatched: 2 })
})

t.test('--url asks the running service\'s dry-run route: the same plan', async (t) => {
  const [paid] = (fixture('batch-orders-update-paid') as { data: Array<Record<string, unknown>> }).data
  const body = JSON.stringify({ data: [withIdentity(paid!, 800_001)] })
  const here = await cliOf(service, { stdin: Readable.from([body]) })('plan', '-', '--json')
  const there = await cliOf(service, { stdin: Readable.from([body]) })('plan', '-', '--json', '--url', url)
  t.equal(there.code, 0, there.stderr)
  t.same(JSON.parse(there.stdout), JSON.parse(here.stdout))
  t.match(JSON.parse(there.stdout).messages[0].runs[0], { workflow: 'order-flow', verdict: 'start' })
})

t.test('a refused body exits 1: here as one error line, through --url as the service answered it', async (t) => {
  const here = await cliOf(service, { stdin: Readable.from(['{"data": {}}']) })('plan', '-')
  t.same([here.code, here.out], [1, []])
  t.match(here.stderr, /^error: .*data/)
  const there = await cliOf(service, { stdin: Readable.from(['{"data": {}}']) })('plan', '-', '--url', url)
  t.equal(there.code, 1)
  t.match(there.out, ['400 Bad Request', /"code":"CF_BAD_ENVELOPE"/])
})
