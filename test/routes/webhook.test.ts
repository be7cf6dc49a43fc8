import { gzipSync } from 'node:zlib'
import t from 'tap'
import { fixture, fixtureMessages, startService, TOKEN, withIdentity } from '../helpers/service.ts'

const service = await startService({ workers: false, env: { BODY_LIMIT: '256kb' } })
t.teardown(() => service.close())

const paid = fixture('batch-orders-update-paid')

t.test('401: every auth failure gets the same body, and nothing is enqueued', async (t) => {
  const attempts: Array<Record<string, string>> = [
    {},
    { authorization: 'Bearer wrong' },
    { authorization: `Bearer ${TOKEN}x` },
    { authorization: TOKEN },
    { authorization: `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}` },
  ]
  const bodies = new Set<string>()
  for (const headers of attempts) {
    const response = await service.post(paid, headers)
    t.equal(response.statusCode, 401, JSON.stringify(headers))
    bodies.add(response.body)
  }
  t.equal(bodies.size, 1, 'one identical 401 body')
  t.same(JSON.parse([...bodies][0]!), { statusCode: 401, code: 'CF_UNAUTHORIZED', error: 'Unauthorized', message: 'missing or invalid webhook token' })
  t.notMatch([...bodies][0], TOKEN, 'the body does not echo the token')
  t.equal(await service.queue('order-flow').count(), 0)
})

t.test('401 comes before the body is read: an oversized body without a token is 401, not 413', async (t) => {
  const response = await service.post('x'.repeat(300 * 1024), { authorization: 'Bearer nope' })
  t.equal(response.statusCode, 401)
})

t.test('200 with the counts for a batched body', async (t) => {
  const response = await service.post(paid)
  t.equal(response.statusCode, 200)
  t.same(response.json(), { accepted: 1, duplicates: 0, unmatched: 0, quarantined: 0, jobs: 1 })
})

t.test('200 for a single bare message (batching off)', async (t) => {
  const message = withIdentity(fixtureMessages('single-orders-update-paid')[0]!, 900_000)
  const response = await service.post(message)
  t.equal(response.statusCode, 200)
  // Order 1001's earlier run has not finished (no workers here): this run waits its turn.
  t.same(response.json(), { accepted: 1, duplicates: 0, unmatched: 0, quarantined: 0, jobs: 0 })
})

t.test('content-encoding gzip is decoded; the limit applies to the decoded size', async (t) => {
  const message = withIdentity(fixtureMessages('single-orders-update-paid')[0]!, 900_001)
  const ok = await service.post(gzipSync(JSON.stringify({ data: [message] })), {
    authorization: `Bearer ${TOKEN}`, 'content-encoding': 'gzip',
  })
  t.equal(ok.statusCode, 200)
  t.match(ok.json(), { accepted: 1 })

  // 1 MiB of whitespace compresses to about 1 KiB: small on the wire, over the limit decoded.
  const bomb = gzipSync(`{"data": [${' '.repeat(1024 * 1024)}1]}`)
  t.ok(bomb.length < 256 * 1024)
  const tooBig = await service.post(bomb, { authorization: `Bearer ${TOKEN}`, 'content-encoding': 'gzip' })
  t.equal(tooBig.statusCode, 413)

  const corrupt = await service.post(Buffer.from('not gzip at all'), { authorization: `Bearer ${TOKEN}`, 'content-encoding': 'gzip' })
  t.equal(corrupt.statusCode, 400)
})

t.test('413 for a body over BODY_LIMIT', async (t) => {
  const response = await service.post({ data: [{ padding: 'x'.repeat(300 * 1024) }] })
  t.equal(response.statusCode, 413)
})

t.test('415 for bodies that are not JSON, or an unsupported encoding', async (t) => {
  const text = await service.post('hello', { authorization: `Bearer ${TOKEN}`, 'content-type': 'text/plain' })
  t.equal(text.statusCode, 415)
  const form = await service.post('a=1', { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-www-form-urlencoded' })
  t.equal(form.statusCode, 415)
  const brotli = await service.post(paid, { authorization: `Bearer ${TOKEN}`, 'content-encoding': 'br' })
  t.equal(brotli.statusCode, 415)
  t.match(brotli.json(), { code: 'CF_UNSUPPORTED_ENCODING' })
  t.match(text.json(), { statusCode: 415, code: 'CF_UNSUPPORTED_MEDIA_TYPE', error: 'Unsupported Media Type' })
})

t.test('400 for unparseable JSON, a body-level prototype key, and envelopes of neither shape', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['truncated JSON', '{"data": [{"action": ', 'CF_BAD_JSON'],
    ['__proto__ key at the top of the body', '{"__proto__": {"polluted": true}, "data": [{"action": "insert"}]}', 'CF_BAD_ENVELOPE'],
    ['data is not an array', '{"data": {"action": "insert"}}', 'CF_BAD_ENVELOPE'],
    ['data is empty', '{"data": []}', 'CF_BAD_ENVELOPE'],
    ['top-level array', '[{"action": "insert"}]', 'CF_BAD_ENVELOPE'],
  ]
  for (const [name, body, code] of cases) {
    const response = await service.post(body)
    t.equal(response.statusCode, 400, name)
    t.match(response.json(), { statusCode: 400, code, error: 'Bad Request', message: /\S/ }, `${name}: says why`)
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted')
})

t.test('prototype keys inside a record are data: the message is accepted, not refused', async (t) => {
  const cases: Array<[string, string, number]> = [
    ['__proto__ key', '"__proto__": {"polluted": true}', 900_010],
    ['constructor.prototype key', '"constructor": {"prototype": {"polluted": true}}', 900_011],
  ]
  for (const [name, keys, lsn] of cases) {
    const message = withIdentity(fixtureMessages('batch-mixed-orders-users')[2]!, lsn) // a users insert: user-signup runs
    const text = JSON.stringify({ data: [message] }).replace('"record":{', `"record":{${keys},`)
    t.match(text, keys, `${name}: in the record`)
    const response = await service.post(text)
    t.equal(response.statusCode, 200, name)
    // Both are the same row: the second run waits behind the first (no workers here), so no job count.
    t.match(response.json(), { accepted: 1, duplicates: 0, unmatched: 0, quarantined: 0 }, `${name}: a valid change, routed`)
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted')
})

t.test('unknown routes and methods are not the webhook', async (t) => {
  const get = await service.web.app.inject({ method: 'GET', url: '/webhooks/sequin', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(get.statusCode, 404)
  t.match(get.json(), { statusCode: 404, code: 'CF_NOT_FOUND', error: 'Not Found', message: 'no route for GET /webhooks/sequin' })
})

t.test('security headers are set on every response', async (t) => {
  const response = await service.post(paid)
  t.equal(response.headers['x-content-type-options'], 'nosniff')
  t.ok(response.headers['content-security-policy'])
})

t.test('healthz and readyz', async (t) => {
  const health = await service.web.app.inject({ method: 'GET', url: '/healthz' })
  t.equal(health.statusCode, 200)
  const ready = await service.web.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ready' })
})
