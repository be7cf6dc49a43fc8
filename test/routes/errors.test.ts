import { randomBytes } from 'node:crypto'
import { STATUS_CODES, request as httpRequest } from 'node:http'
import { connect, type Socket } from 'node:net'
import { gzipSync } from 'node:zlib'
import { Queue } from 'bullmq'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { buildApp, type AppDeps } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { Errors } from '../../src/errors.ts'
import type { Ingest, IngestOutcome } from '../../src/ingest/ingest.ts'
import { createLogger } from '../../src/logger.ts'
import { Metrics } from '../../src/metrics.ts'
import { deleteKeys, REDIS_URL } from '../helpers/service.ts'

/*
 * The error contract: every status >= 400 the service answers, whoever raises it (our routes,
 * the dashboard, Fastify, its plugins, Node's HTTP parser), has one body shape and a code from
 * src/errors.ts. Each path below is exercised for real; the last test checks that together they
 * reach every code of the catalogue, so a new code comes with its path here.
 */

const TOKEN = 'contract-token-0123456789'
const BEARER = { authorization: `Bearer ${TOKEN}` }
const USER = 'operator'
const PASSWORD = 'board-password-0123456789'
const BASIC = { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` }
const INTERNAL_SECRET = 'the-internal-detail-nobody-may-see'
const CATALOG = new Set<string>(Object.values(Errors).map((E) => new E().code))
const seen = new Set<string>()

interface Answer { statusCode: number, headers: Record<string, unknown>, body: string }

/** Asserts the shape every error answer has, and records its code. Returns the parsed body. */
function contract (t: Test, response: Answer, status: number, code: string, what = `${status} ${code}`): Record<string, unknown> {
  t.equal(response.statusCode, status, `${what}: status`)
  t.match(String(response.headers['content-type']), /^application\/json/, `${what}: JSON`)
  const body = JSON.parse(response.body) as Record<string, unknown>
  t.match(body, { statusCode: status, code, error: STATUS_CODES[status], message: /\S/ }, `${what}: { statusCode, code, error, message }`)
  t.ok(CATALOG.has(String(body.code)), `${what}: a code of the catalogue`)
  if (status === 503) t.equal(response.headers['retry-after'], '5', `${what}: Retry-After`)
  if (status >= 500) t.notMatch(response.body, /\.ts:\d+|node_modules|at [\w.]+ \(/, `${what}: no stack`)
  seen.add(code)
  return body
}

// One app as run.ts builds it, with the dashboard (read-only, on real Redis) and an ingest whose
// answer each test picks: the route's mapping is what is under test, not ingest.
const logs: string[] = []
const logger = createLogger({ LOG_LEVEL: 'info' }, { write: (line: string) => { logs.push(line) } })
const prefix = `{t-${randomBytes(5).toString('hex')}}`
const redis = new Redis(REDIS_URL)
const queue = new Queue('order-paid', { connection: redis, prefix })
let answer: (text: string) => Promise<IngestOutcome> = async () => ({ kind: 'bad-json', reason: 'unset' })
let notReady: string | null = null
const ingest: Ingest = (text) => answer(text)

async function build (env: Record<string, string> = {}, overrides: Partial<AppDeps> = {}): Promise<FastifyInstance> {
  const config = loadConfig({ BODY_LIMIT: '64kb', METRICS_TOKEN: 'scrape-secret', ...env })
  const app = await buildApp(config, {
    logger,
    metrics: new Metrics(),
    ingest,
    dryRun: async () => ({ kind: 'unavailable', reason: 'the dry run is tested in test/routes/dry-run.test.ts' }),
    tokens: [TOKEN],
    notReadyReason: () => notReady,
    isClosing: () => false,
    board: { queues: [queue], username: USER, password: PASSWORD, readOnly: true },
    ...overrides,
  })
  t.teardown(() => app.close())
  return app
}

const app = await build()
t.teardown(async () => {
  await queue.close()
  await deleteKeys(redis, `${prefix}*`)
  redis.disconnect()
})

const post = (payload: string | Buffer, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> =>
  app.inject({ method: 'POST', url: '/webhooks/sequin', headers: { ...BEARER, 'content-type': 'application/json', ...headers }, payload })

t.test('webhook: refused before the body is read', async (t) => {
  contract(t, await post('{}', { authorization: 'Bearer wrong' }), 401, 'CF_UNAUTHORIZED')
  notReady = 'redis connecting'
  t.teardown(() => { notReady = null })
  const body = contract(t, await post('{}'), 503, 'CF_UNAVAILABLE', 'not ready')
  t.match(body.message, 'not ready')
})

t.test('webhook: bodies Fastify or our parser refuse', async (t) => {
  contract(t, await post('hello', { 'content-type': 'text/plain' }), 415, 'CF_UNSUPPORTED_MEDIA_TYPE', 'text/plain')
  contract(t, await post('a=1', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'CF_UNSUPPORTED_MEDIA_TYPE', 'a form')
  contract(t, await post('{}', { 'content-type': ';;;' }), 415, 'CF_UNSUPPORTED_MEDIA_TYPE', 'an invalid content-type')
  contract(t, await post('{}', { 'content-encoding': 'br' }), 415, 'CF_UNSUPPORTED_ENCODING')
  contract(t, await post(Buffer.from('not gzip at all'), { 'content-encoding': 'gzip' }), 400, 'CF_BAD_GZIP')
  const tooBig = contract(t, await post(`"${'x'.repeat(70 * 1024)}"`), 413, 'CF_BODY_TOO_LARGE', 'over BODY_LIMIT')
  t.match(tooBig.message, String(64 * 1024), 'says the limit')
  const bomb = gzipSync(`"${' '.repeat(1024 * 1024)}"`)
  contract(t, await post(bomb, { 'content-encoding': 'gzip' }), 413, 'CF_BODY_TOO_LARGE', 'over BODY_LIMIT once decoded')
})

t.test('webhook: every outcome of ingest that is not accepted', async (t) => {
  const rejection = [{ index: 1, issues: [{ path: 'record', message: 'expected an object' }] }]
  const cases: Array<[IngestOutcome, number, string]> = [
    [{ kind: 'bad-json', reason: 'body is not JSON: Unexpected end' }, 400, 'CF_BAD_JSON'],
    [{ kind: 'bad-envelope', reason: '"data" must be a non-empty array' }, 400, 'CF_BAD_ENVELOPE'],
    [{ kind: 'too-many-messages', count: 1001, limit: 1000 }, 413, 'CF_TOO_MANY_MESSAGES'],
    [{ kind: 'rejected', errors: rejection }, 422, 'CF_INVALID_MESSAGES'],
    [{ kind: 'quarantine-full', held: 9_999, limit: 10_000, errors: rejection }, 422, 'CF_QUARANTINE_FULL'],
    [{ kind: 'unavailable', reason: 'redis too slow' }, 503, 'CF_UNAVAILABLE'],
  ] as Array<[IngestOutcome, number, string]>
  const bodies: Record<string, Record<string, unknown>> = {}
  for (const [outcome, status, code] of cases) {
    answer = async () => outcome
    bodies[outcome.kind] = contract(t, await post('{}'), status, code, outcome.kind)
  }
  t.match(bodies['bad-json']!.message, 'Unexpected end', 'bad-json says why')
  t.match(bodies['bad-envelope']!.message, '"data" must be', 'bad-envelope says why')
  t.match(bodies['too-many-messages']!.message, /1001 messages.*at most 1000 \(MAX_BATCH_MESSAGES\)/)
  t.same(bodies.rejected!.messages, rejection, 'rejected lists the invalid messages')
  t.same(bodies['quarantine-full']!.messages, rejection, 'quarantine-full lists them too')
  t.match(bodies['quarantine-full']!.message, /holds 9999 messages \(QUARANTINE_LIMIT 10000\).*[Rr]edrive.*remove them/, 'and tells the operator what to do')
  t.match(bodies.unavailable!.message, 'redis too slow', 'an expected 503 keeps our reason')
  t.ok(logs.some((line) => line.includes('"level":40') && line.includes('answered 503')), 'expected 503s are logged as warnings')
})

t.test('webhook: an unexpected error is a 500 that hides its internals and is logged with them', async (t) => {
  answer = async () => { throw new Error(`WRONGTYPE at ${INTERNAL_SECRET}`) }
  const before = logs.length
  const response = await post('{}', { 'x-request-id': 'req-contract-1' })
  const body = contract(t, response, 500, 'CF_INTERNAL')
  t.notMatch(response.body, INTERNAL_SECRET, 'the body does not echo the error')
  t.match(body.message, 'req-contract-1', 'it names the request id to look up in the log')
  const logged = logs.slice(before).map((line) => JSON.parse(line) as Record<string, any>)
    .find((line) => line.level === 50 && line.msg === 'request failed')
  t.ok(logged, 'logged at error level')
  t.match(logged?.err, { message: new RegExp(INTERNAL_SECRET), stack: /\S/ }, 'with the error and its stack')
  t.equal(logged?.reqId, 'req-contract-1')
})

t.test('404 for any URL and method no route serves', async (t) => {
  contract(t, await app.inject({ url: '/nope' }), 404, 'CF_NOT_FOUND', 'GET /nope')
  contract(t, await app.inject({ method: 'POST', url: '/nope', payload: { a: 1 } }), 404, 'CF_NOT_FOUND', 'POST /nope')
  const get = contract(t, await app.inject({ url: '/webhooks/sequin?token=secret', headers: BEARER }), 404, 'CF_NOT_FOUND', 'GET on the webhook')
  t.equal(get.message, 'no route for GET /webhooks/sequin', 'names method and path, not the query')
  contract(t, await app.inject({ method: 'DELETE', url: '/healthz' }), 404, 'CF_NOT_FOUND', 'DELETE /healthz')
  contract(t, await app.inject({ url: '/%zz' }), 400, 'CF_BAD_REQUEST', 'a malformed URL')
  contract(t, await app.inject({ url: `/admin/queues/api/queues/${'q'.repeat(200)}/1`, headers: BASIC }), 414, 'CF_URL_TOO_LONG', 'an over-long URL part')
})

t.test('/metrics and /readyz', async (t) => {
  contract(t, await app.inject({ url: '/metrics' }), 401, 'CF_UNAUTHORIZED', 'metrics without its token')
  contract(t, await app.inject({ url: '/metrics', headers: BEARER }), 401, 'CF_UNAUTHORIZED', 'metrics with the webhook token')
  t.equal((await app.inject({ url: '/metrics', headers: { authorization: 'Bearer scrape-secret' } })).statusCode, 200)

  notReady = 'maxmemory-policy is allkeys-lru'
  t.teardown(() => { notReady = null })
  const ready = contract(t, await app.inject({ url: '/readyz' }), 503, 'CF_UNAVAILABLE', 'readyz')
  t.match(ready, { status: 'not ready', reason: 'maxmemory-policy is allkeys-lru' }, 'with the reason for probes and operators')
})

t.test('dashboard: 401, 403, 404 and its own failures', async (t) => {
  const unauthorized = await app.inject({ url: '/admin/queues/api/queues' })
  contract(t, unauthorized, 401, 'CF_BOARD_UNAUTHORIZED')
  t.match(unauthorized.headers['www-authenticate'], /^Basic realm="changeflow"/)
  contract(t, await app.inject({ url: '/admin/queues/no-such-page' }), 401, 'CF_BOARD_UNAUTHORIZED', 'unknown board URL, no credentials')
  contract(t, await app.inject({ method: 'PUT', url: '/admin/queues/api/queues/pause', headers: BASIC }), 403, 'CF_BOARD_READ_ONLY')
  contract(t, await app.inject({ url: '/admin/queues/no-such-page', headers: BASIC }), 404, 'CF_NOT_FOUND', 'unknown board URL')
  contract(t, await app.inject({ url: '/admin/queues/static/no-such-file.js', headers: BASIC }), 404, 'CF_NOT_FOUND', 'unknown board asset')

  // A key of the wrong type makes Bull Board's job lookup fail inside Redis: its own error
  // handler would answer with the message (and, in development, the stack).
  await redis.set(`${prefix}:order-paid:broken`, 'not a hash')
  const response = await app.inject({ url: '/admin/queues/api/queues/order-paid/broken', headers: BASIC })
  contract(t, response, 500, 'CF_INTERNAL', 'a Bull Board failure')
  t.notMatch(response.body, /WRONGTYPE/, 'the Redis error stays in the log')
  t.ok(logs.some((line) => line.includes('"level":50') && line.includes('WRONGTYPE')), 'where it is, at error level')
})

t.test('under pressure: 503 with Retry-After in the same shape', async (t) => {
  const loaded = await build({ MAX_HEAP_USED: '1mb' })
  await loaded.ready()
  await new Promise((resolve) => setTimeout(resolve, 1_200)) // one sample of the heap
  const body = contract(t, await loaded.inject({ url: '/healthz' }), 503, 'CF_UNAVAILABLE', 'overloaded')
  t.match(body.message, 'overloaded')
})

t.test('shutting down: a request arriving after close() began gets our 503', async (t) => {
  const closing = await build()
  const statuses: Answer[] = []
  // preClose hooks run once close() began, while the server still accepts: a request sent from
  // here is one Fastify would answer with its own fixed 503 body.
  closing.addHook('preClose', async () => { statuses.push(await get(closing, '/healthz')) })
  await closing.listen({ host: '127.0.0.1', port: 0 })
  t.equal((await get(closing, '/healthz')).statusCode, 200, 'open before')
  await closing.close()
  t.equal(statuses.length, 1)
  contract(t, statuses[0]!, 503, 'CF_UNAVAILABLE', 'shutting down')
  t.match(JSON.parse(statuses[0]!.body).message, 'shutting down')
})

t.test("Node's HTTP parser errors: raw answers in the same shape", async (t) => {
  const raw = await build()
  await raw.listen({ host: '127.0.0.1', port: 0 })
  contract(t, await rawExchange(raw, 'THIS IS NOT HTTP\r\n\r\n'), 400, 'CF_BAD_REQUEST', 'not HTTP')
  contract(t, await rawExchange(raw, `GET / HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20 * 1024)}\r\n\r\n`), 431, 'CF_HEADERS_TOO_LARGE')
  // Node raises this one after headersTimeout/requestTimeout, checked every 30 s: raised here directly.
  const timedOut = rawExchange(raw, 'GET / HTTP/1.1\r\nhost: x\r\n', (socket) => {
    raw.server.emit('clientError', Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), socket)
  })
  contract(t, await timedOut, 408, 'CF_REQUEST_TIMEOUT')
})

t.test('every code of the catalogue was answered by one of the paths above', async (t) => {
  t.same([...CATALOG].filter((code) => !seen.has(code)), [], 'no code without a path, no path left out')
})

function get (app: FastifyInstance, path: string): Promise<Answer> {
  const { port } = app.server.address() as { port: number }
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (response) => {
      let body = ''
      response.on('data', (chunk) => { body += chunk })
      response.on('end', () => resolve({ statusCode: response.statusCode ?? 0, headers: response.headers, body }))
    })
    request.on('error', reject)
    request.end()
  })
}

/**
 * Writes `text` on a fresh connection to `server` and parses the raw answer. `serverSide` gets
 * the server's end of the connection once the text arrived.
 */
function rawExchange (server: FastifyInstance, text: string, serverSide?: (socket: Socket) => void): Promise<Answer> {
  const { port } = server.server.address() as { port: number }
  return new Promise((resolve, reject) => {
    if (serverSide) server.server.once('connection', (accepted: Socket) => accepted.once('data', () => serverSide(accepted)))
    const socket = connect(port, '127.0.0.1')
    let received = ''
    socket.on('data', (chunk) => { received += chunk })
    socket.on('error', () => {})
    socket.on('close', () => {
      const [head = '', body = ''] = received.split('\r\n\r\n')
      const [statusLine = '', ...headerLines] = head.split('\r\n')
      const headers = Object.fromEntries(headerLines.map((line) => {
        const colon = line.indexOf(':')
        return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]
      }))
      const statusCode = Number(statusLine.split(' ')[1])
      if (!statusCode) reject(new Error(`no HTTP answer: ${JSON.stringify(received)}`))
      else resolve({ statusCode, headers, body })
    })
    socket.write(text)
  })
}
