import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { loadConfig } from '../../src/config.ts'
import { freePort } from '../../src/redis/embedded.ts'
import { changeflow, envOf, listen } from '../helpers/changeflow.ts'
import { cliOf, fixture, fixturesDir, startService, withIdentity } from '../helpers/service.ts'

const service = await startService({ workers: false })
t.teardown(() => service.close())
const { url, port } = await listen(service)
const cli = cliOf(service)
const file = (name: string) => fileURLToPath(new URL(`${name}.json`, fixturesDir))

t.test('the README example: a fixture is accepted, then is a duplicate', async (t) => {
  // Exactly as in the README, against this service (PORT) with its token.
  const first = await changeflow(['send', 'test/fixtures/batch-orders-update-paid.json'], envOf(service, port))
  t.equal(first.code, 0, first.stderr)
  t.equal(first.stdout, '200 OK\n{"accepted":1,"duplicates":0,"unmatched":0,"quarantined":0,"jobs":1}\n')
  const again = await cli('send', file('batch-orders-update-paid'), '--url', url, '--json')
  t.equal(again.code, 0, again.stderr)
  t.same(JSON.parse(again.stdout), { status: 200, body: { accepted: 0, duplicates: 1, unmatched: 0, quarantined: 0, jobs: 0 } })
})

t.test('standard input, and a refused body exits 1 with the error contract printed', async (t) => {
  const message = withIdentity((fixture('single-orders-update-paid') as Record<string, unknown>), 900_001)
  const bare = await cliOf(service, { stdin: Readable.from([JSON.stringify(message)]) })('send', '-', '--url', `${url}/webhooks/sequin`)
  t.equal(bare.code, 0, bare.stderr)
  t.match(bare.stdout, /^200 OK\n\{"accepted":1,/)

  const refused = await changeflow(['send', '-', '--url', url, '--json'], envOf(service), '{"data": []}')
  t.equal(refused.code, 1)
  t.match(JSON.parse(refused.stdout), { status: 400, body: { code: 'CF_BAD_ENVELOPE', statusCode: 400 } })
  t.equal(refused.stderr, '')
})

t.test('a wrong token is answered 401 (exit 1); an unreachable service and a missing file are errors (exit 1)', async (t) => {
  const stranger = cliOf({ config: loadConfig({ SEQUIN_WEBHOOK_TOKENS: 'not-the-token' }), redis: service.redis })
  const unauthorized = await stranger('send', file('batch-orders-insert'), '--url', url)
  t.equal(unauthorized.code, 1)
  t.match(unauthorized.out, ['401 Unauthorized', /"code":"CF_UNAUTHORIZED"/])

  const closed = await freePort()
  const unreachable = await cli('send', file('batch-orders-insert'), '--url', `http://127.0.0.1:${closed}`)
  t.same([unreachable.code, unreachable.stderr], [1, `error: cannot reach http://127.0.0.1:${closed}/webhooks/sequin: ECONNREFUSED`])
  const missing = await cli('send', 'no/such/file.json', '--url', url)
  t.same([missing.code, missing.stderr], [1, 'error: cannot read no/such/file.json: ENOENT'])
  const bad = await cli('send', file('batch-orders-insert'), '--url', 'not a url')
  t.same([bad.code, bad.stderr], [1, 'error: --url: not a URL: "not a url"'])
})
