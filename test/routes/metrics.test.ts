import t from 'tap'
import { fixture, startService, waitFor } from '../helpers/service.ts'

const scrape = async (service: Awaited<ReturnType<typeof startService>>, headers: Record<string, string> = {}) => {
  const response = await service.web.app.inject({ method: 'GET', url: '/metrics', headers })
  return { status: response.statusCode, text: response.body }
}

/** The value of one sample line, or 0 when the series does not exist yet. */
function sample (text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)
    ? wanted.every((w) => l.includes(w))
    : false)
  return line ? Number(line.split(' ').at(-1)) : 0
}

t.test('the numbers move when work happens', async (t) => {
  const service = await startService()
  t.teardown(() => service.close())
  const before = (await scrape(service)).text
  t.equal(sample(before, 'changeflow_steps_completed_total', { workflow: 'order-flow' }), 0)

  await service.post(fixture('batch-orders-update-paid'))
  await service.post(fixture('batch-orders-update-paid'))
  await service.post(fixture('batch-orders-update-default-replica-identity'))
  await service.post({ data: [{ not: 'a change' }] })
  await waitFor(async () => sample((await scrape(service)).text, 'changeflow_steps_completed_total', { workflow: 'order-flow', step: 'three' }) === 1, 5_000, 'the run to complete')

  const { status, text } = await scrape(service)
  t.equal(status, 200)
  t.equal(sample(text, 'changeflow_messages_total', { table: 'public.orders', action: 'update', outcome: 'accepted' }), 1)
  t.equal(sample(text, 'changeflow_messages_total', { table: 'public.orders', action: 'update', outcome: 'duplicate' }), 1)
  t.equal(sample(text, 'changeflow_messages_total', { table: 'public.orders', action: 'update', outcome: 'unmatched' }), 1)
  t.equal(sample(text, 'changeflow_messages_total', { outcome: 'quarantined' }), 1)
  t.equal(sample(text, 'changeflow_updates_without_changes_total', { table: 'public.orders' }), 1)
  t.equal(sample(text, 'changeflow_steps_enqueued_total', { workflow: 'order-flow', step: 'one' }), 1)
  t.equal(sample(text, 'changeflow_steps_enqueued_total', { workflow: 'order-flow', step: 'three' }), 1)
  t.equal(sample(text, 'changeflow_step_duration_seconds_count', { workflow: 'order-flow', step: 'two' }), 1)
  t.equal(sample(text, 'changeflow_run_lag_seconds_count', { workflow: 'order-flow' }), 1)
  t.equal(sample(text, 'changeflow_http_requests_total', { route: '/webhooks/sequin', method: 'POST', status: '200' }), 4)
  t.equal(sample(text, 'changeflow_queue_jobs', { queue: 'order-flow', state: 'completed' }), 3)
  t.match(text, /changeflow_rows_blocked\{reason="failed"\} 0/)
  t.match(text, /changeflow_process_cpu_seconds_total/, 'process metrics too')
  t.notMatch(text, /\{[^}]*1001[^}]*\}/, 'no row data in labels') // in labels: a sample's value may hold the digits
})

t.test('failed and retried steps are counted, blocked rows too', async (t) => {
  const service = await startService()
  t.teardown(() => service.close())
  const message = { ...(fixture('batch-orders-insert') as { data: Array<Record<string, Record<string, unknown>>> }).data[0]! }
  message.metadata = { ...message.metadata, table_name: 'doomed_things' }
  await service.post({ data: [message] })
  await waitFor(async () => sample((await scrape(service)).text, 'changeflow_steps_failed_total', { workflow: 'doomed', step: 'first' }) === 1, 5_000, 'the failure')
  const { text } = await scrape(service)
  t.equal(sample(text, 'changeflow_rows_blocked', { reason: 'failed' }), 1)
  t.equal(sample(text, 'changeflow_steps_retried_total', { workflow: 'doomed' }), 0, 'a permanent error is not retried')
})

t.test('METRICS_TOKEN protects /metrics', async (t) => {
  const service = await startService({ workers: false, env: { METRICS_TOKEN: 'scrape-secret' } })
  t.teardown(() => service.close())
  t.equal((await scrape(service)).status, 401)
  t.equal((await scrape(service, { authorization: 'Bearer wrong' })).status, 401)
  t.equal((await scrape(service, { authorization: 'Bearer scrape-secret' })).status, 200)
})

t.test("with METRICS_PORT the webhook's port does not serve /metrics (the metrics listener does)", async (t) => {
  const service = await startService({ workers: false, env: { METRICS_PORT: '9464' } })
  t.teardown(() => service.close())
  const response = await service.web.app.inject({ method: 'GET', url: '/metrics' })
  t.equal(response.statusCode, 404)
  t.match(response.json(), { statusCode: 404, code: 'CF_NOT_FOUND' })
  t.equal((await service.web.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'health stays on both')
})

t.test('METRICS_TOKEN refusals have the common error shape', async (t) => {
  const service = await startService({ workers: false, env: { METRICS_TOKEN: 'scrape-secret' } })
  t.teardown(() => service.close())
  const response = await service.web.app.inject({ method: 'GET', url: '/metrics' })
  t.same(response.json(), { statusCode: 401, code: 'CF_UNAUTHORIZED', error: 'Unauthorized', message: 'missing or invalid metrics token' })
})

t.test('under pressure the service sheds load with 503 and Retry-After', async (t) => {
  const service = await startService({ workers: false, env: { MAX_HEAP_USED: '1mb' } })
  t.teardown(() => service.close())
  await new Promise((resolve) => setTimeout(resolve, 1_200)) // one sample of the heap
  const response = await service.post(fixture('batch-orders-insert'))
  t.equal(response.statusCode, 503)
  t.ok(Number(response.headers['retry-after']) > 0)
  t.match(response.json(), { statusCode: 503, code: 'CF_UNAVAILABLE', error: 'Service Unavailable', message: /overloaded/ })
})
