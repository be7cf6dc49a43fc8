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

/** A copy of the paid-order fixture message as a change of another table's row, at a commit position. */
function changeOf (table: string, id: number, lsn: number, idx = 0): Record<string, unknown> {
  const [paid] = (fixture('batch-orders-update-paid') as { data: Array<Record<string, unknown>> }).data
  const message = withIdentity(paid!, lsn, idx) as { metadata: Record<string, unknown>, record: Record<string, unknown> }
  message.metadata.table_name = table
  message.metadata.record_pks = [String(id)]
  message.record.id = id
  return message
}

t.test('the same change twice in one body: accepted once and then a duplicate, as the webhook answers', async (t) => {
  const message = changeOf('orders', 71, 710_001)
  const body = { data: [message, structuredClone(message)] }
  const planned = (await dryRun(body)).json()
  t.same(planned.messages.map((m: { outcome: string }) => m.outcome), ['accepted', 'duplicate'])
  t.equal(planned.messages[1].runs[0].verdict, 'duplicate')
  const posted = (await service.post(body)).json()
  t.match(posted, { accepted: planned.counts.accepted, duplicates: planned.counts.duplicates })
})

t.test('a late change is said to be late, and a run its workflow skips when late is not started', async (t) => {
  t.equal((await service.post({ data: [changeOf('ledger_state', 72, 720_010), changeOf('ledger', 72, 720_010, 1)] })).statusCode, 200)
  const late = { data: [changeOf('ledger_state', 72, 720_005), changeOf('ledger', 72, 720_005, 1)] }
  const before = await keyCount()
  const planned = (await dryRun(late)).json()
  t.equal(await keyCount(), before, 'the dry run wrote nothing')
  const [skipped, run] = planned.messages
  t.match(skipped, { outcome: 'accepted', late: true, runs: [{ workflow: 'ledger-sync', verdict: 'skip-late' }] })
  t.match(run, { outcome: 'accepted', late: true })
  t.same(run.runs.map((r: { verdict: string }) => r.verdict), ['start', 'start'], 'ledger-apply and ledger-audit run late changes')
  t.match((await service.post(late)).json(), { accepted: 2 })
  t.notOk(await service.queue('ledger-sync').getJob(skipped.runs[0].steps[0].jobId), 'the webhook skipped the run too')
  const runKey = (run: string) => `{${service.config.REDIS_PREFIX}}:_cf:run:${run}`
  t.equal(await service.redis.hget(runKey(run.runs[0].run), 'late'), '1', 'and took the other runs, as late ones')

  const newer = (await dryRun({ data: [changeOf('ledger_state', 72, 720_011)] })).json()
  t.notOk(newer.messages[0].late, 'a newer change is not late')
  t.equal(newer.messages[0].runs[0].verdict, 'start')
})

t.test('a full quarantine: the dry run answers the status the webhook refuses the body with', async (t) => {
  const small = await startService({ workers: false, env: { QUARANTINE_LIMIT: '2', MAX_BATCH_MESSAGES: '2' } })
  t.teardown(() => small.close())
  const plan = async (body: unknown) => (await small.web.app.inject({
    method: 'POST', url: '/webhooks/sequin/dry-run', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, payload: JSON.stringify(body),
  })).json()
  t.match(await plan({ data: [{ bad: 1 }, { bad: 2 }] }), { status: 200, counts: { quarantined: 2 } })
  t.equal((await small.post({ data: [{ bad: 1 }, { bad: 2 }] })).statusCode, 200)
  t.match(await plan({ data: [{ bad: 1 }] }), { status: 200 }, 'a message the quarantine holds already adds nothing')
  const full = await plan({ data: [{ bad: 3 }] })
  const refused = await small.post({ data: [{ bad: 3 }] })
  t.same([refused.statusCode, refused.json().code], [422, 'CF_QUARANTINE_FULL'])
  t.match(full, { status: 422, code: 'CF_QUARANTINE_FULL' })
})
