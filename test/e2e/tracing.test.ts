import { createRequire } from 'node:module'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { projectRoot } from '../../src/config.ts'
import { spawnRole } from '../helpers/processes.ts'
import { fixtureMessages, REDIS_URL, startService, TOKEN, waitFor, withIdentity } from '../helpers/service.ts'
import { ownPrefix, startWebProcess } from '../helpers/web-processes.ts'

interface OtlpValue {
  stringValue?: string
  intValue?: string | number
  doubleValue?: number
  arrayValue?: { values: OtlpValue[] }
}
interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attributes: Array<{ key: string, value: OtlpValue }>
  links?: Array<{ traceId: string, spanId: string }>
  status?: { code?: number }
}
interface Received { service: string, span: OtlpSpan, attrs: Record<string, unknown> }

const SERVER = 2
const PRODUCER = 4
const CONSUMER = 5
const STATUS_ERROR = 2

function valueOf (value: OtlpValue): unknown {
  if (value.arrayValue) return value.arrayValue.values.map(valueOf)
  if (value.intValue !== undefined) return Number(value.intValue)
  return value.stringValue ?? value.doubleValue
}

/** A collector on loopback that takes OTLP/HTTP JSON, as the service's exporter sends it. */
async function startReceiver (t: { teardown (fn: () => unknown): void }) {
  const spans: Received[] = []
  const contentTypes = new Set<string>()
  const read = async (request: IncomingMessage) => {
    const chunks: Buffer[] = []
    for await (const chunk of request) chunks.push(chunk as Buffer)
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
      resourceSpans: Array<{ resource: { attributes: OtlpSpan['attributes'] }, scopeSpans: Array<{ spans: OtlpSpan[] }> }>
    }
  }
  const server = createServer((request, response) => {
    contentTypes.add(`${request.method} ${request.url} ${request.headers['content-type']}`)
    read(request).then((body) => {
      for (const { resource, scopeSpans } of body.resourceSpans) {
        const service = String(valueOf(resource.attributes.find((a) => a.key === 'service.name')!.value))
        for (const { spans: batch } of scopeSpans) {
          for (const span of batch) {
            spans.push({ service, span, attrs: Object.fromEntries(span.attributes.map((a) => [a.key, valueOf(a.value)])) })
          }
        }
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    }, () => response.writeHead(400).end())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, contentTypes }
}

const template = fixtureMessages('batch-orders-update-paid')[0]!
/** A change whose row carries values no span may show. */
function change (table: string, action: string, lsn: number) {
  type Message = Record<string, unknown> & { record: Record<string, unknown>, metadata: Record<string, unknown> }
  const message = withIdentity(template, lsn) as Message
  message.action = action
  message.metadata.table_name = table
  message.metadata.record_pks = ['9876543']
  message.record = { ...message.record, id: 9876543, status: 'paid', email: 'row-secret@example.com' }
  return message
}

t.test('tracing on: the webhook request, each change and each step of its run in one trace, across processes', async (t) => {
  const receiver = await startReceiver(t)
  const { prefix, redis } = ownPrefix(t, REDIS_URL)
  const env = {
    REDIS_URL,
    REDIS_PREFIX: prefix,
    SEQUIN_WEBHOOK_TOKENS: TOKEN,
    JOBS_DIR: join(projectRoot, 'test/fixtures/jobs'),
    EMBEDDED_REDIS: 'false',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '50',
  }
  const { web, url } = await startWebProcess(t, 'tracing-web', env)
  const worker = spawnRole('worker', env, 'tracing-worker')
  t.teardown(() => worker.stop('SIGKILL'))

  const paid = change('orders', 'update', 7_000)
  const doomed = change('doomed_things', 'insert', 7_001)
  const post = (authorization: string) => fetch(url, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/json' },
    body: JSON.stringify({ data: [paid, doomed] }),
  })
  t.equal((await post('Bearer wrong')).status, 401)
  const accepted = await post(`Bearer ${TOKEN}`)
  t.match(await accepted.json(), { accepted: 2, jobs: 2 })

  const steps = () => receiver.spans.filter((s) => s.span.name.startsWith('step '))
  await waitFor(() => steps().length >= 4, 20_000, 'the spans of order-flow\'s three steps and doomed\'s first')
  t.same((await web.stop('SIGTERM')).code, 0, 'the web process exits cleanly, its spans exported')
  t.same((await worker.stop('SIGTERM')).code, 0)

  const requests = receiver.spans.filter((s) => s.span.name === 'POST /webhooks/sequin')
  const statuses = requests.map((s) => s.attrs['http.response.status_code']).sort()
  t.same(statuses, [200, 401], 'a SERVER span per request, refused ones too')
  const request = requests.find((s) => s.attrs['http.response.status_code'] === 200)!
  t.equal(request.span.kind, SERVER)
  t.equal(request.service, 'changeflow')
  t.match(request.attrs, { 'http.request.method': 'POST', 'http.route': '/webhooks/sequin', 'url.path': '/webhooks/sequin' })

  const changes = receiver.spans.filter((s) => s.span.name === 'change')
  t.equal(changes.length, 2, 'a span per change')
  for (const { span } of changes) {
    t.equal(span.kind, PRODUCER)
    t.notOk(span.parentSpanId, 'each change is the root of its own trace')
    const links = span.links?.map((link) => [link.traceId, link.spanId])
    t.same(links, [[request.span.traceId, request.span.spanId]], 'linked to its request')
    t.not(span.traceId, request.span.traceId)
  }
  const changeOf = (table: string) => changes.find((s) => s.attrs['changeflow.table'] === `public.${table}`)!
  t.match(changeOf('orders').attrs, { 'changeflow.action': 'update', 'changeflow.workflows': ['order-flow'] })

  const order = changeOf('orders').span
  const flow = steps().filter((s) => s.attrs['changeflow.workflow'] === 'order-flow')
  t.same(flow.map((s) => s.attrs['changeflow.step']).sort(), ['one', 'three', 'two'], 'a span per step of the run')
  for (const step of flow) {
    t.equal(step.span.kind, CONSUMER)
    t.equal(step.span.traceId, order.traceId, `step ${step.attrs['changeflow.step']} is in its change's trace`)
    t.equal(step.span.parentSpanId, order.spanId, 'a child of the change span')
    const changeId = changeOf('orders').attrs['changeflow.change_id']
    t.match(step.attrs, { 'changeflow.attempt': 1, 'changeflow.outcome': 'completed', 'changeflow.change_id': changeId })
    t.ok((step.attrs['changeflow.commit_lag_ms'] as number) > 0, 'the commit lag, from a commit long ago')
  }

  const [failed, ...more] = steps().filter((s) => s.attrs['changeflow.workflow'] === 'doomed')
  t.equal(more.length, 0, 'a PermanentError is not retried')
  t.equal(failed!.span.traceId, changeOf('doomed_things').span.traceId)
  t.match(failed!.attrs, { 'changeflow.step': 'first', 'changeflow.outcome': 'failed', 'error.type': 'PermanentError' })
  t.equal(failed!.span.status?.code, STATUS_ERROR)

  const everything = JSON.stringify(receiver.spans.map((s) => [s.span.name, s.attrs]))
  t.notMatch(everything, /row-secret|9876543|card declined/, 'no row value, primary key or step error message in any span')
  t.same([...receiver.contentTypes], ['POST /v1/traces application/json'])

  const [job] = await redis.hmget(`{${prefix}}:order-flow:three.${flow[0]!.attrs['changeflow.run']}`, 'data')
  t.equal(JSON.parse(job!).trace, `00-${order.traceId}-${order.spanId}-01`, 'the last step\'s job data carries the change\'s context')
})

t.test('tracing off: the SDK is not loaded and job data has no trace field', async (t) => {
  const service = await startService()
  t.teardown(() => service.close())
  t.match((await service.post({ data: [change('orders', 'update', 7_100)] })).json(), { accepted: 1, jobs: 1 })
  const queue = service.queue('order-flow')
  await waitFor(async () => (await queue.getJobCounts('completed')).completed === 3, 5_000, 'the run\'s three steps')
  const jobs = await queue.getJobs(['completed'])
  t.same(jobs.map((job) => job.data.step).sort(), ['one', 'three', 'two'])
  t.same(jobs.filter((job) => 'trace' in job.data), [], 'no step carries a trace field')
  // The OpenTelemetry packages are CommonJS: whatever imported them, they would be in this cache.
  // Only the API may be there: prom-client loads it for exemplars (without an SDK it does nothing).
  const loaded = Object.keys(createRequire(import.meta.url).cache)
    .filter((path) => path.includes('/@opentelemetry/') && !path.includes('/@opentelemetry/api/'))
  t.same(loaded, [], 'the web side and the workers ran without loading the OpenTelemetry SDK')
})
