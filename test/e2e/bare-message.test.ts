import t from 'tap'
import { startService } from '../helpers/service.ts'

// An unbatched body (batch: false, or via-SQS mode) is the message itself; with Sequin's
// `legacy_transform: record_only` it is the row, whose columns may be named `prototype` or
// `constructor`: such a body is one message, quarantined like any other that fails the schema,
// never a 400 that Sequin would retry forever.
const service = await startService({ workers: false })
t.teardown(() => service.close())

t.test('a bare message whose row has a column named prototype/constructor is quarantined, not refused', async (t) => {
  for (const body of [
    '{"id":1,"name":"widget","prototype":true}',
    '{"id":2,"constructor":"ACME builders"}',
  ]) {
    const bare = await service.post(body)
    t.equal(bare.statusCode, 200, `bare ${body}: ${bare.body}`)
    const batched = await service.post(`{"data":[${body}]}`)
    t.equal(batched.statusCode, 200, `the same row batched is accepted: ${batched.body}`)
  }
})
