import t, { type Test } from 'tap'
import pino from 'pino'
import { Metrics } from '../../../src/metrics.ts'
import { startMetricsHttp } from '../../../src/runtime/metrics-http.ts'

async function serve (t: Test, token?: string) {
  const metrics = new Metrics()
  metrics.httpRequests.inc({ route: '/webhooks/sequin', method: 'POST', status: '200' })
  const app = await startMetricsHttp({ HOST: '127.0.0.1', METRICS_TOKEN: token }, metrics, pino({ level: 'silent' }), 0)
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  return (path: string, headers: Record<string, string> = {}) => fetch(`http://127.0.0.1:${port}${path}`, { headers })
}

t.test('METRICS_PORT serves the process registry and /healthz, nothing else', async (t) => {
  const get = await serve(t)
  const metrics = await get('/metrics')
  t.equal(metrics.status, 200)
  t.match(await metrics.text(), /changeflow_http_requests_total\{route="\/webhooks\/sequin",method="POST",status="200"\} 1/)
  t.same(await (await get('/healthz')).json(), { status: 'ok' })
  for (const path of ['/readyz', '/webhooks/sequin', '/admin/queues', '/nope']) {
    const response = await get(path)
    t.equal(response.status, 404, path)
    t.match(await response.json(), { statusCode: 404, code: 'CF_NOT_FOUND', error: 'Not Found', message: `no route for GET ${path}` })
  }
})

t.test('METRICS_TOKEN still applies there, in the common error shape', async (t) => {
  const get = await serve(t, 'scrape-secret')
  const refused = await get('/metrics', { authorization: 'Bearer wrong' })
  t.equal(refused.status, 401)
  t.same(await refused.json(), { statusCode: 401, code: 'CF_UNAUTHORIZED', error: 'Unauthorized', message: 'missing or invalid metrics token' })
  t.equal((await get('/metrics', { authorization: 'Bearer scrape-secret' })).status, 200)
})
