import t from 'tap'
import { executions, reset } from '../fixtures/jobs/_recorder.ts'
import { startService, waitFor } from '../helpers/service.ts'
import { messageText } from '../helpers/stack.ts'

// A jsonb value is Postgres `numeric` inside: it holds integers of any length (`select
// '{"n": 1e400}'::jsonb` prints 401 digits), and Sequin's JSON encoder writes them digit for digit.
// JSON.parse would make such a literal Infinity (stored as null): the step sees its exact text.
const service = await startService()
t.teardown(() => service.close())
t.beforeEach(() => reset())

let lsn = 7_700_000
const contentInsert = (id: number, recordJson: string) => messageText('content', id, lsn++, recordJson)
const batch = (...messages: string[]) => `{"data":[${messages.join(',')}]}`
const echoed = (key: string) => executions.find((e) => e.workflow === 'content-echo' && e.key === key)

const huge = '1' + '0'.repeat(400) // 10^400: a valid jsonb number, beyond a double's range

t.test('an integer of 401 digits in a jsonb column reaches the step exactly (not as null)', async (t) => {
  const response = await service.post(batch(contentInsert(1, `{"id":1,"doc":{"n":${huge},"m":-${huge}}}`)))
  t.equal(response.statusCode, 200, response.body)
  await waitFor(() => echoed('1') !== undefined, 5_000, 'the row echoed')
  t.same(echoed('1')!.record, { id: 1, doc: { n: huge, m: `-${huge}` } }, 'exact decimal text, as for any integer beyond 2^53')
})

t.test('the same value does not depend on what else the body holds', async (t) => {
  // With an int8 beyond 2^53 elsewhere in the body, the second pass quotes every long integer,
  // and the same 401-digit value arrives exactly: the outcome depends on a neighbour's content.
  const response = await service.post(batch(
    contentInsert(2, `{"id":2,"doc":{"n":${huge}}}`),
    contentInsert(3, '{"id":3,"snowflake":1234567890123456789}')))
  t.equal(response.statusCode, 200, response.body)
  await waitFor(() => echoed('2') !== undefined && echoed('3') !== undefined, 5_000, 'both rows echoed')
  t.same(echoed('2')!.record, { id: 2, doc: { n: huge } })
  t.same(echoed('3')!.record, { id: 3, snowflake: '1234567890123456789' })
})
