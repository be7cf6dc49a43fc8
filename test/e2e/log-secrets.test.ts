import { gzipSync } from 'node:zlib'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { loadConfig } from '../../src/config.ts'
import { createLogger } from '../../src/logger.ts'
import { createWeb, createWorker } from '../../src/runtime/services.ts'
import { defineWorkflow } from '../../src/workflows/define.ts'
import { loadWorkflows } from '../../src/workflows/load.ts'
import { deleteKeys, fixture, fixtureMessages, REDIS_URL, startService, TOKEN, waitFor, withIdentity } from '../helpers/service.ts'

// Every line the service logs, at info and above (the production default), as JSON text.
const logs: string[] = []
const service = await startService({ logs })

// The web side again, with the dashboard wired as `npm run web` wires it, logging into the same lines.
const BOARD_USER = 'operator'
const BOARD_PASSWORD = 'board-secret-Qx81vZ'
const WRONG_PASSWORD = 'not-the-board-pw-55'
const WRONG_TOKEN = 'not-the-token-987654'
const logger = createLogger({ LOG_LEVEL: 'info' }, { write: (line: string) => { logs.push(line) } })
const boardWeb = await createWeb({
  config: service.config,
  logger,
  redisUrl: REDIS_URL,
  workflows: await loadWorkflows(service.config.JOBS_DIR),
  tokens: service.config.SEQUIN_WEBHOOK_TOKENS,
  board: { username: BOARD_USER, password: BOARD_PASSWORD },
})
// The board's web first: once it is closed nothing writes under the prefix that service.close deletes.
t.teardown(async () => {
  await boardWeb.close()
  await service.close()
})

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
const parsed = () => logs.map((line) => JSON.parse(line) as Record<string, unknown>)
const withMsg = (msg: string) => parsed().filter((line) => line.msg === msg)

/** Every value found under a key named `authorization` (any case), at any depth of a log line. */
function authorizationValues (value: unknown): unknown[] {
  if (!value || typeof value !== 'object') return []
  return Object.entries(value).flatMap(([key, inner]) =>
    key.toLowerCase() === 'authorization' ? [inner] : authorizationValues(inner))
}

// Row payload values the exchange carries: they belong in Redis, never in the log.
const ROW_VALUES = ['ada@example.com', 'grace@example.org', 'Ada Lovelace', '149.90', 'quarantined.person@example.net', 'doomed.person@example.com', 'gzipped.person@example.com']

let lsn = 30_000_000_000 // newer than the fixtures' commits, so no change here is late
const insertTemplate = fixtureMessages('batch-orders-insert')[0]!
function insertInto (table: string, record: Record<string, unknown>) {
  const message = withIdentity(insertTemplate, lsn++) as { record: Record<string, unknown>, metadata: Record<string, unknown> }
  message.metadata.table_name = table
  message.metadata.record_pks = [String(record.id)]
  message.record = record
  return message
}

t.test('a full exchange logs requests and steps, and none of the secrets or row values', async (t) => {
  // Sequin's batch, with the token and a request id of its own.
  const batch = await service.post(fixture('batch-mixed-orders-users'), { authorization: `Bearer ${TOKEN}`, 'x-request-id': 'sequin-req-4711' })
  t.equal(batch.statusCode, 200, 'the fixture batch is accepted')

  const wrong = await service.post(fixture('batch-orders-update-paid'), { authorization: `Bearer ${WRONG_TOKEN}` })
  t.equal(wrong.statusCode, 401, 'a wrong token is refused')
  const none = await service.post(fixture('batch-orders-update-paid'), {})
  t.equal(none.statusCode, 401, 'no token is refused')

  const paid = withIdentity(fixtureMessages('batch-orders-update-paid')[0]!, lsn++) as { record: Record<string, unknown> }
  paid.record.customer_email = 'gzipped.person@example.com'
  const gzipped = await service.post(gzipSync(JSON.stringify({ data: [paid] })), { authorization: `Bearer ${TOKEN}`, 'content-encoding': 'gzip' })
  t.match(gzipped.json(), { accepted: 1 }, 'a gzip body is accepted')

  const invalid = { ...insertInto('users', { id: 901, email: 'quarantined.person@example.net' }), action: 'upsert' }
  t.match((await service.post({ data: [invalid] })).json(), { quarantined: 1 }, 'an invalid message is quarantined')

  t.match((await service.post({ data: [insertInto('doomed_things', { id: 902, email: 'doomed.person@example.com' })] })).json(), { accepted: 1, jobs: 1 })
  const garbage = await service.post('{"data": [ not json', { authorization: `Bearer ${TOKEN}` })
  t.equal(garbage.statusCode, 400, 'a body that is not JSON is refused')

  // The dashboard: right and wrong credentials, the page and its API.
  const page = await boardWeb.app.inject({ url: '/admin/queues', headers: { authorization: basic(BOARD_USER, BOARD_PASSWORD) } })
  t.equal(page.statusCode, 200, 'the dashboard opens with its credentials')
  const api = await boardWeb.app.inject({ url: '/admin/queues/api/queues?activeQueue=order-flow', headers: { authorization: basic(BOARD_USER, BOARD_PASSWORD) } })
  t.equal(api.statusCode, 200, 'its API answers')
  const refused = await boardWeb.app.inject({ url: '/admin/queues', headers: { authorization: basic(BOARD_USER, WRONG_PASSWORD) } })
  t.equal(refused.statusCode, 401, 'a wrong password is refused')

  // order-flow runs twice (3 steps each), user-signup once; doomed fails for good; the quarantine job fails.
  await waitFor(() => withMsg('step completed').length >= 7, 10_000, 'the completed steps')
  await waitFor(() => withMsg('step failed for good: its run stops here until an operator retries it').length >= 1, 10_000, 'the doomed step')
  await waitFor(() => withMsg('quarantined message still invalid').length >= 1, 10_000, 'the quarantine job')

  // Not passing on empty logs: requests and steps are there, with their identifying fields.
  const all = parsed()
  t.comment(`log lines: ${logs.length} (${[...new Set(all.map((line) => line.msg))].join(' | ')})`)
  const requests = withMsg('incoming request')
  t.ok(requests.length >= 9, `request lines (${requests.length})`)
  t.ok(requests.every((line) => typeof line.reqId === 'string' && line.reqId !== ''), 'every request line has a request id')
  t.ok(withMsg('request completed').every((line) => typeof line.reqId === 'string'), 'every completion line too')
  t.match(withMsg('batch accepted').find((line) => line.reqId === 'sequin-req-4711'), { accepted: 2, unmatched: 2 }, "Sequin's x-request-id is the request id")
  const steps = withMsg('step completed')
  t.ok(steps.every((line) => ['workflow', 'step', 'table', 'key', 'action'].every((field) => field in line)), 'step lines name workflow, step, table, key and action')
  t.match(steps.find((line) => line.workflow === 'order-flow' && line.step === 'three'), { table: 'public.orders', key: ['1001'], action: 'update' })
  t.match(withMsg('step failed for good: its run stops here until an operator retries it')[0], { queue: 'doomed', step: 'first', err: { message: 'card declined' } })
  t.match(withMsg('message quarantined')[0], { reason: String, issues: Array })

  // The secrets.
  const text = logs.join('')
  const secrets = {
    'the webhook token': TOKEN,
    'the wrong token': WRONG_TOKEN,
    'a bearer header': 'Bearer ',
    'a basic header': 'Basic ',
    'the board password': BOARD_PASSWORD,
    'the wrong board password': WRONG_PASSWORD,
    'the board credentials, encoded': basic(BOARD_USER, BOARD_PASSWORD).slice(6),
  }
  for (const [name, secret] of Object.entries(secrets)) t.notOk(text.includes(secret), `no line contains ${name}`)
  const authorization = all.flatMap(authorizationValues)
  t.ok(authorization.every((value) => value === '[redacted]'), `any authorization field is redacted (${authorization.length} found)`)
  for (const value of ROW_VALUES) t.notOk(text.includes(value), `no line contains the row value ${value}`)
  t.ok(all.every((line) => (line.level as number) >= 30), 'every line checked is at info or above')
})

// HTTP clients (axios: err.config.headers.Authorization) attach the request's credentials to the
// errors a step throws; the worker logs failed steps with their error.
t.test('a step failing with an HTTP client error does not put the provider key in the log', async (t) => {
  const PROVIDER_KEY = 'sk_live_provider_key_31337'
  const providerError = () => Object.assign(new Error('Request failed with status code 402'), {
    name: 'AxiosError',
    config: { method: 'post', url: 'https://api.payments.example/charges', headers: { Authorization: `Bearer ${PROVIDER_KEY}` } },
  })
  const workflow = defineWorkflow({ name: 'charge-card', table: 'payments', on: ['insert'], steps: [{ name: 'charge', attempts: 1, run: () => { throw providerError() } }] })
  const lines: string[] = []
  const log = createLogger({ LOG_LEVEL: 'info' }, { write: (line: string) => { lines.push(line) } })
  const config = loadConfig({ REDIS_PREFIX: `t-${randomBytes(5).toString('hex')}`, SEQUIN_WEBHOOK_TOKENS: TOKEN, LOG_LEVEL: 'info' })
  const web = await createWeb({ config, logger: log, redisUrl: REDIS_URL, workflows: [workflow], tokens: [TOKEN] })
  const worker = createWorker({ config, logger: log, redisUrl: REDIS_URL, workflows: [workflow] })
  t.teardown(async () => {
    await worker.close()
    await web.close()
    await deleteKeys(service.redis, `{${config.REDIS_PREFIX}}*`)
  })
  const payload = JSON.stringify({ data: [insertInto('payments', { id: 903 })] })
  const response = await web.app.inject({ method: 'POST', url: '/webhooks/sequin', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, payload })
  t.match(response.json(), { accepted: 1, jobs: 1 })
  const failed = () => lines.filter((line) => line.includes('"msg":"step failed for good'))
  await waitFor(() => failed().length === 1, 10_000, 'the failed step')
  t.comment(`failure line: ${failed()[0]!.replace(/"stack":"(\\"|[^"])*",/, '')}`)
  t.match(JSON.parse(failed()[0]!), { queue: 'charge-card', step: 'charge', err: { message: 'Request failed with status code 402' } }, 'the failure is logged')
  t.notOk(lines.join('').includes(TOKEN), 'no line contains the webhook token')
  t.notOk(lines.join('').includes(PROVIDER_KEY), 'no line contains the provider key the step sent')
})
