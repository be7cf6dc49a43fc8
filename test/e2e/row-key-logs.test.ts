import t, { type Test } from 'tap'
import { rowKeyHash } from '../../src/row-keys.ts'
import { failures } from '../fixtures/jobs/_recorder.ts'
import { fixtureMessages, startService, waitFor, withIdentity } from '../helpers/service.ts'

const SECRET = 'log-row-key-secret-for-tests-0123'
const insertTemplate = fixtureMessages('batch-orders-insert')[0]!

/** An insert into flaky_things for row `id` whose first step fails once: a retry line, then completed steps. */
function flakyInsert (id: number, lsn: number) {
  failures.set(`flaky/${id}`, 1)
  const message = withIdentity(insertTemplate, lsn) as { record: Record<string, unknown>, metadata: Record<string, unknown> }
  message.metadata.table_name = 'flaky_things'
  message.metadata.record_pks = [String(id)]
  message.record = { id }
  return message
}

/** The log lines of a service with these settings about one row, once its run completed. */
async function stepLines (t: Test, env: Record<string, string>, id: number, lsn: number) {
  const logs: string[] = []
  const service = await startService({ env, logs })
  t.teardown(() => service.close())
  t.match((await service.post({ data: [flakyInsert(id, lsn)] })).json(), { accepted: 1 })
  const about = () => logs.filter((line) => line.includes('"table":"public.flaky_things"'))
  await waitFor(() => about().filter((line) => line.includes('"msg":"step completed"')).length === 2, 10_000, 'both steps completed')
  const lines = about()
  t.ok(lines.some((line) => line.includes('"msg":"step failed; it will be retried with backoff"')), 'the retry is among them')
  return lines
}

t.test('LOG_ROW_KEYS=hash: step and failure lines carry the keyed hash of the primary key, never the key', async (t) => {
  const lines = await stepLines(t, { LOG_ROW_KEYS: 'hash', LOG_ROW_KEY_SECRET: SECRET }, 73519246, 50_000)
  const hash = rowKeyHash(SECRET, 'public.flaky_things', ['73519246'])
  t.equal(lines.length, 3)
  for (const line of lines) {
    t.equal(JSON.parse(line).keyHash, hash)
    t.notOk('key' in JSON.parse(line), 'no key field')
    t.notMatch(line, '73519246', 'the key value appears nowhere in the line')
  }
  t.not(hash, rowKeyHash('another-secret-of-16+chars', 'public.flaky_things', ['73519246']), 'the hash depends on the secret')
  t.not(hash, rowKeyHash(SECRET, 'public.flaky_things', ['73519247']), 'and on the key')
  t.not(hash, rowKeyHash(SECRET, 'public.other_things', ['73519246']), 'and on the table')
})

t.test('LOG_ROW_KEYS=plain: the lines carry the key itself', async (t) => {
  const lines = await stepLines(t, { LOG_ROW_KEYS: 'plain' }, 84620357, 50_100)
  t.equal(lines.length, 3)
  for (const line of lines) {
    t.same(JSON.parse(line).key, ['84620357'])
    t.notOk('keyHash' in JSON.parse(line))
  }
})
