import { randomBytes } from 'node:crypto'
import helmet from '@fastify/helmet'
import { Queue, UnrecoverableError, Worker } from 'bullmq'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import pino from 'pino'
import t from 'tap'
import board from '../../routes/board.ts'
import { Errors } from '../../src/errors.ts'
import { createTokenCheck } from '../../src/http/auth.ts'
import { errorContractOptions, useErrorContract } from '../../src/http/error-contract.ts'
import { REDIS_URL } from '../helpers/test-redis.ts'

const BASE = '/admin/queues'
const USER = 'operator'
const PASSWORD = 'correct horse battery staple'
const TOKEN = 'webhook-token-0123456789'
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
const GOOD = { authorization: basic(USER, PASSWORD) }

const prefix = `{t-${randomBytes(5).toString('hex')}}`
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null })
const [orders, quarantine] = ['order-paid', 'quarantine'].map((name) => new Queue(name, { connection: redis, prefix })) as [Queue, Queue]
t.teardown(async () => {
  await Promise.all([orders.close(), quarantine.close()])
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    if (keys.length > 0) await redis.del(...keys)
    cursor = next
  } while (cursor !== '0')
  redis.disconnect()
})

/** A quarantined message, failed for good with its error, as the quarantine worker leaves it. */
async function failedJob (): Promise<string> {
  const job = await quarantine.add('invalid-message', { index: 3, message: { record: { id: 7 } } })
  const connection = redis.duplicate()
  const worker = new Worker(quarantine.name, async () => { throw new UnrecoverableError('record.id: expected string') }, { connection, prefix })
  await new Promise((resolve) => worker.once('failed', resolve))
  await worker.close()
  connection.disconnect()
  return job.id!
}

interface Built { app: FastifyInstance, routes: Array<{ method: string, url: string }> }

/** The app's shape: its error contract, helmet, then the webhook with its bearer token, then the board. */
async function build (readOnly: boolean): Promise<Built> {
  const app = Fastify({ ...errorContractOptions(pino({ level: 'silent' })) })
  useErrorContract(app)
  const routes: Built['routes'] = []
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url ?? route.path })
  })
  await app.register(helmet)
  const bearer = createTokenCheck([TOKEN])
  app.post('/webhooks/sequin', {
    onRequest: async (request) => {
      if (!bearer(request.headers.authorization)) throw new Errors.Unauthorized('webhook')
    },
  }, async () => ({ accepted: 0 }))
  await app.register(board, { queues: [orders, quarantine], username: USER, password: PASSWORD, readOnly })
  await app.ready()
  t.teardown(() => app.close())
  return { app, routes }
}

const normal = await build(false)
const readOnly = await build(true)
const boardRoutes = normal.routes.filter((route) => route.url.startsWith(BASE))
const jobId = await failedJob()

t.test('the board adds routes only under its base path, and all the mutating ones are there', async (t) => {
  t.same(normal.routes.filter((route) => !route.url.startsWith(BASE)).map((route) => route.url).sort(),
    ['/webhooks/sequin'], 'nothing outside /admin/queues but the webhook')
  const seen = new Set(boardRoutes.map((route) => `${route.method} ${route.url}`))
  for (const expected of [
    'GET /admin/queues', 'GET /admin/queues/static/*', 'GET /admin/queues/api/queues',
    'PUT /admin/queues/api/queues/:queueName/:jobId/retry', 'PUT /admin/queues/api/queues/:queueName/retry/:queueStatus',
    'PUT /admin/queues/api/queues/:queueName/clean/:queueStatus', 'PUT /admin/queues/api/queues/:queueName/:jobId/clean',
    'PUT /admin/queues/api/queues/:queueName/promote', 'PUT /admin/queues/api/queues/pause', 'PUT /admin/queues/api/queues/:queueName/resume',
    'PUT /admin/queues/api/queues/:queueName/empty', 'PUT /admin/queues/api/queues/:queueName/obliterate',
    'POST /admin/queues/api/queues/:queueName/add', 'PATCH /admin/queues/api/queues/:queueName/:jobId/update-data',
  ]) t.ok(seen.has(expected), expected)
})

t.test('every board URL answers 401 without the right basic credentials, the webhook token included', async (t) => {
  const targets = [
    ...boardRoutes.map(({ method, url }) => ({
      method,
      url: url.replace(/:(\w+)\??/g, (_match, name: string) => name === 'queueName' ? 'quarantine' : name === 'jobId' ? jobId : 'x').replace('*', 'js/x.js'),
    })),
    { method: 'GET', url: `${BASE}/no-such-page` },
    { method: 'POST', url: `${BASE}/api/no-such-endpoint` },
  ]
  const attempts: Record<string, Record<string, string>> = {
    'no credentials': {},
    'wrong password': { authorization: basic(USER, 'wrong') },
    'wrong user': { authorization: basic('admin', PASSWORD) },
    'swapped user and password': { authorization: basic(PASSWORD, USER) },
    'password only': { authorization: basic('', PASSWORD) },
    'malformed basic': { authorization: 'Basic !!!' },
    'webhook bearer token': { authorization: `Bearer ${TOKEN}` },
    'webhook token as basic password': { authorization: basic(USER, TOKEN) },
  }
  for (const [what, headers] of Object.entries(attempts)) {
    const open: string[] = []
    for (const { method, url } of targets) {
      for (const { app } of [normal, readOnly]) {
        const response = await app.inject({ method: method as 'GET', url, headers: { ...headers, 'content-type': 'application/json' }, payload: method === 'GET' || method === 'HEAD' ? undefined : '{}' })
        const challenge = response.headers['www-authenticate']
        const code = method === 'HEAD' ? 'CF_BOARD_UNAUTHORIZED' : response.json().code // a HEAD answer has no body
        if (response.statusCode !== 401 || typeof challenge !== 'string' || !challenge.startsWith('Basic realm="changeflow"') || code !== 'CF_BOARD_UNAUTHORIZED') {
          open.push(`${method} ${url} → ${response.statusCode} ${code}`)
        }
      }
    }
    t.same(open, [], `${what}: all ${targets.length} URLs refused in both modes`)
  }
  t.equal(await quarantine.getJobState(jobId), 'failed', 'nothing was retried or removed')
  t.equal(await quarantine.isPaused(), false)
})

t.test('401 comes before the body is read', async (t) => {
  const response = await normal.app.inject({ method: 'POST', url: `${BASE}/api/queues/order-paid/add`, headers: { 'content-type': 'application/json' }, payload: 'x'.repeat(2 * 1024 * 1024) })
  t.equal(response.statusCode, 401)
})

t.test('with the credentials: the page, its assets and the API list both queues', async (t) => {
  const page = await normal.app.inject({ url: BASE, headers: GOOD })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.body, '<base href="/admin/queues/"')
  const script = /src="(static\/js\/main\.[^"]+\.js)"/.exec(page.body)?.[1]
  t.ok(script, 'the page loads the board script')
  const asset = await normal.app.inject({ url: `${BASE}/${script}`, headers: GOOD })
  t.equal(asset.statusCode, 200)
  t.equal((await normal.app.inject({ url: `${BASE}/${script}` })).statusCode, 401)

  const api = await normal.app.inject({ url: `${BASE}/api/queues`, headers: GOOD })
  t.equal(api.statusCode, 200)
  t.equal(api.headers['cache-control'], 'no-store')
  const listed = (api.json() as { queues: Array<Record<string, unknown>> }).queues
  t.same(listed.map((queue) => queue.name).sort(), ['order-paid', 'quarantine'])
  t.match(listed.find((queue) => queue.name === 'quarantine'), { displayName: 'quarantine (invalid messages)', description: /failed validation/, readOnlyMode: false })

  const job = await normal.app.inject({ url: `${BASE}/api/queues/quarantine/${jobId}`, headers: GOOD })
  t.equal(job.statusCode, 200)
  t.match(job.json(), { job: { data: { index: 3 }, failedReason: 'record.id: expected string' } })
})

t.test('read-only: the board shows queues but refuses every mutation with 403', async (t) => {
  const api = await readOnly.app.inject({ url: `${BASE}/api/queues`, headers: GOOD })
  t.equal(api.statusCode, 200)
  t.match((api.json() as { queues: unknown[] }).queues, [{ readOnlyMode: true }, { readOnlyMode: true }])
  for (const [method, url] of [
    ['PUT', `${BASE}/api/queues/quarantine/${jobId}/retry`],
    ['PUT', `${BASE}/api/queues/quarantine/${jobId}/clean`],
    ['PUT', `${BASE}/api/queues/pause`],
    ['POST', `${BASE}/api/queues/order-paid/add`],
  ] as const) {
    const response = await readOnly.app.inject({ method, url, headers: GOOD, payload: { name: 'x', data: {} } })
    t.equal(response.statusCode, 403, `${method} ${url}`)
    t.same(response.json(), { statusCode: 403, code: 'CF_BOARD_READ_ONLY', error: 'Forbidden', message: 'the dashboard is read-only' })
  }
  t.equal(await quarantine.getJobState(jobId), 'failed')
  t.equal(await orders.count(), 0)
})

t.test('normal mode: an operator retries a quarantined message and removes a step', async (t) => {
  const retry = await normal.app.inject({ method: 'PUT', url: `${BASE}/api/queues/quarantine/${jobId}/retry`, headers: GOOD })
  t.equal(retry.statusCode, 204)
  t.equal(await quarantine.getJobState(jobId), 'waiting')

  const step = await orders.add('send-receipt', { change: { record: { id: 42 } } })
  const clean = await normal.app.inject({ method: 'PUT', url: `${BASE}/api/queues/order-paid/${step.id}/clean`, headers: GOOD })
  t.equal(clean.statusCode, 204)
  t.equal(await orders.getJob(step.id!), undefined)
})

t.test('the webhook keeps its own auth, and the board credentials do not open it', async (t) => {
  const post = (authorization?: string) => normal.app.inject({ method: 'POST', url: '/webhooks/sequin', headers: authorization ? { authorization } : {}, payload: {} })
  t.equal((await post(`Bearer ${TOKEN}`)).statusCode, 200)
  const withBasic = await post(GOOD.authorization)
  t.equal(withBasic.statusCode, 401)
  t.notOk(withBasic.headers['www-authenticate'], 'no basic challenge outside the board')
  t.equal((await post()).statusCode, 401)
})

t.test('CSP: helmet default outside the board; inside only upgrade-insecure-requests is dropped', async (t) => {
  const bare = Fastify()
  await bare.register(helmet)
  bare.get('/', async () => 'ok')
  const helmetDefault = (await bare.inject({ url: '/' })).headers['content-security-policy'] as string
  await bare.close()
  t.match(helmetDefault, "script-src 'self'")
  t.match(helmetDefault, 'upgrade-insecure-requests')

  const webhook = await normal.app.inject({ method: 'POST', url: '/webhooks/sequin', headers: { authorization: `Bearer ${TOKEN}` }, payload: {} })
  t.equal(webhook.headers['content-security-policy'], helmetDefault)
  const page = await normal.app.inject({ url: BASE, headers: GOOD })
  const expected = helmetDefault.split(';').filter((directive) => directive !== 'upgrade-insecure-requests').join(';')
  t.equal(page.headers['content-security-policy'], expected)
})
