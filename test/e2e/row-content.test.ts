import t from 'tap'
import { executions, reset } from '../fixtures/jobs/_recorder.ts'
import { startService, waitFor } from '../helpers/service.ts'
import { messageText, type Message } from '../helpers/stack.ts'

// A row's content is the customer's data: whatever it holds, it never fails its batch.
const service = await startService()
t.teardown(() => service.close())
t.beforeEach(() => reset())

let lsn = 900_000

/** A `content` insert for row `id` as JSON text, with `recordJson` spliced in verbatim as the record. */
const contentInsert = (id: number, recordJson = `{"id":${id}}`) => messageText('content', id, lsn++, recordJson)
const batch = (...messages: string[]) => `{"data":[${messages.join(',')}]}`
const echoed = (key: string) => executions.find((e) => e.workflow === 'content-echo' && e.key === key)

t.test('__proto__ and constructor.prototype inside a row are data: accepted, and the step sees them', async (t) => {
  const response = await service.post(batch(
    contentInsert(1, '{"id":1,"__proto__":{"admin":true},"settings":{"__proto__":{"x":1}}}'),
    contentInsert(2, '{"id":2,"constructor":{"prototype":{"polluted":true}}}')
  ))
  t.equal(response.statusCode, 200, response.body)
  t.match(response.json(), { accepted: 2, quarantined: 0, jobs: 2 })
  await waitFor(() => echoed('1') !== undefined && echoed('2') !== undefined, 5_000, 'both rows echoed')
  const one = echoed('1')!.record!
  t.same(Object.keys(one), ['id', '__proto__', 'settings'], 'the column is an own key, in place')
  t.same(Object.getOwnPropertyDescriptor(one, '__proto__')?.value, { admin: true })
  t.equal(Object.getPrototypeOf(one), Object.prototype, 'no prototype was set from data')
  t.same(Object.getOwnPropertyDescriptor(one.settings, '__proto__')?.value, { x: 1 }, 'nested too')
  t.same(echoed('2')!.record!.constructor, { prototype: { polluted: true } })
  t.equal(({} as Record<string, unknown>).polluted, undefined)
})

t.test('a row nested too deep to store is quarantined alone, with an excerpt; its batch is accepted', async (t) => {
  const deep = '{"a":'.repeat(8_000) + '1' + '}'.repeat(8_000)
  const response = await service.post(batch(contentInsert(3), contentInsert(4, `{"id":4,"doc":${deep}}`), contentInsert(5)))
  t.equal(response.statusCode, 200, response.body)
  t.match(response.json(), { accepted: 2, quarantined: 1, jobs: 3 })
  await waitFor(() => echoed('3') !== undefined && echoed('5') !== undefined, 5_000, 'the neighbours run')
  const quarantine = service.queue('quarantine')
  await waitFor(async () => (await quarantine.getJobCounts('failed')).failed === 1, 5_000, 'the deep row quarantined')
  const [kept] = await quarantine.getJobs(['failed'])
  t.equal(kept!.name, 'unstorable-message')
  t.match(kept!.data, { reason: 'unstorable-message', index: 1, issues: [{ message: /nested deeper than 1000 levels/ }] })
  t.match(kept!.data.excerpt, /^\{"action":"insert",/, 'the excerpt starts as the message did')
  t.ok(kept!.data.excerpt.length < 20_000, 'bounded')
  t.match(kept!.failedReason, /only an excerpt was kept/)

  const again = await service.post(batch(contentInsert(6, `{"id":6,"doc":${'['.repeat(2_000)}${']'.repeat(2_000)}}`)))
  t.match(again.json(), { quarantined: 1 }, 'deeper than the limit, though JSON.stringify could still cope')
})

t.test('integers beyond 2^53 reach the step exactly, as decimal text', async (t) => {
  const response = await service.post(batch(contentInsert(7, '{"id":7,"snowflake":1234567890123456789,"max":9223372036854775807,"small":42,"price":"149.90"}')))
  t.equal(response.statusCode, 200, response.body)
  await waitFor(() => echoed('7') !== undefined, 5_000, 'the row echoed')
  t.same(echoed('7')!.record, { id: 7, snowflake: '1234567890123456789', max: '9223372036854775807', small: 42, price: '149.90' })
})

t.test('commit positions beyond 2^53 are accepted and compared exactly', async (t) => {
  // Two changes of one row whose LSNs a double cannot tell apart: the older arrives second.
  const at = (position: string, id: number) => {
    const message = JSON.parse(contentInsert(id)) as Message
    message.action = 'update'
    message.metadata.idempotency_key = Buffer.from(`${position}:0`).toString('base64')
    return JSON.stringify(message).replace(/"commit_lsn":\d+/, `"commit_lsn":${position}`)
  }
  t.equal(Number('9007199254740993'), Number('9007199254740992'), 'the two positions are one double')
  t.match((await service.post(batch(at('9007199254740993', 8)))).json(), { accepted: 1, quarantined: 0 })
  t.match((await service.post(batch(at('9007199254740992', 8)))).json(), { accepted: 1, quarantined: 0 })
  await waitFor(() => executions.filter((e) => e.key === '8').length === 2, 5_000, 'both changes ran')
  const runs = executions.filter((e) => e.key === '8')
  t.same(runs.map((e) => e.lsn), ['9007199254740993', '9007199254740992'], 'the step sees each exact LSN')
  t.same(runs.map((e) => e.late), [false, true], 'only the older one is late, told apart exactly')
})
