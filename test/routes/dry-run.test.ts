import t from 'tap'
import { fixture, startService, TOKEN, withIdentity } from '../helpers/service.ts'

const service = await startService({ workers: false })
t.teardown(() => service.close())

const dryRun = (body: unknown, authorization = `Bearer ${TOKEN}`) => service.web.app.inject({
  method: 'POST',
  url: '/webhooks/sequin/dry-run',
  headers: { 'content-type': 'application/json', authorization },
  payload: typeof body === 'string' ? body : JSON.stringify(body),
})
const keyCount = async () => (await service.redis.keys(service.keyPattern)).length

t.test('a body is planned: workflows, steps and job ids per change, nothing written; after the real POST it is a duplicate', async (t) => {
  const [paid] = (fixture('batch-orders-update-paid') as { data: Array<Record<string, unknown>> }).data
  const message = withIdentity(paid!, 700_001)
  const invalid = { ...withIdentity(paid!, 700_002), action: 'upsert' }
  const unmatched = { ...withIdentity(paid!, 700_003), action: 'delete' }
  const body = { data: [invalid, message, unmatched] }
  const before = await keyCount()

  const planned = await dryRun(body)
  t.equal(planned.statusCode, 200)
  const result = planned.json()
  t.match(result, { dryRun: true, status: 200, counts: { accepted: 1, duplicates: 0, unmatched: 1, quarantined: 1 } })
  t.same(result.messages.map((m: { index: number, outcome: string }) => [m.index, m.outcome]), [[0, 'quarantined'], [1, 'accepted'], [2, 'unmatched']])
  t.match(result.messages[0], { issues: [{ path: 'action' }], quarantineJobId: /^q\./ })
  const [run] = result.messages[1].runs
  t.match(run, { workflow: 'order-flow', ordered: true, verdict: 'start' })
  t.same(run.steps.map((step: { step: string }) => step.step), ['one', 'two', 'three'])
  t.same(run.steps.map((step: { jobId: string }) => step.jobId), ['one', 'two', 'three'].map((step) => `${step}.${run.run}`))
  t.match(run.steps[0].idempotencyKey, `changeflow.order-flow.one.${result.messages[1].changeId}`)
  t.equal(await keyCount(), before, 'the dry run wrote nothing')

  const posted = await service.post(body)
  t.match(posted.json(), { accepted: 1, quarantined: 1 })
  t.ok(await service.queue('order-flow').getJob(run.steps[0].jobId), 'the real POST added the job the dry run named')
  const again = (await dryRun(body)).json()
  t.match(again.counts, { accepted: 0, duplicates: 1 })
  t.equal(again.messages[1].runs[0].verdict, 'duplicate')
})

t.test('the webhook\'s token and error contract', async (t) => {
  const unauthorized = await dryRun({ data: [] }, 'Bearer wrong')
  t.same([unauthorized.statusCode, unauthorized.json().code], [401, 'CF_UNAUTHORIZED'])
  const envelope = await dryRun({ data: [] })
  t.same([envelope.statusCode, envelope.json().code], [400, 'CF_BAD_ENVELOPE'])
  const json = await dryRun('{not json')
  t.same([json.statusCode, json.json().code], [400, 'CF_BAD_JSON'])
})
