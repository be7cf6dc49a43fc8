import t from 'tap'
import { projectRoot } from '../../src/config.ts'
import { loggingEffects, setEffects, type Effects } from '../../jobs/lib/effects.ts'
import { fixture, fixtureMessages, startService, waitFor, withIdentity } from '../helpers/service.ts'

interface Call { effect: string, input: Record<string, unknown> }
const calls: Call[] = []
const recording: Effects = {
  async reserveInventory (input, log) { calls.push({ effect: 'reserveInventory', input }); return loggingEffects.reserveInventory(input, log) },
  async createShipment (input, log) { calls.push({ effect: 'createShipment', input }); return loggingEffects.createShipment(input, log) },
  async sendEmail (input, log) { calls.push({ effect: 'sendEmail', input }); return loggingEffects.sendEmail(input, log) },
}
setEffects(recording)

const service = await startService({ env: { JOBS_DIR: `${projectRoot}jobs` } })
t.teardown(() => service.close())
t.beforeEach(() => { calls.length = 0 })

t.test('an order turning paid reserves inventory, creates a shipment, then sends the receipt', async (t) => {
  await service.post(fixture('batch-orders-update-paid'))
  await waitFor(() => calls.length === 3, 5_000, 'three effects')
  t.same(calls.map((c) => c.effect), ['reserveInventory', 'createShipment', 'sendEmail'])
  t.match(calls[1]!.input, { orderId: '1001', reservationId: 'res-1001' })
  t.match(calls[2]!.input, { template: 'order-receipt', data: { orderId: 1001, total: '149.90', shipmentId: 'shp-1001' } })
  const keys = calls.map((c) => c.input.idempotencyKey)
  t.equal(new Set(keys).size, 3, 'each effect carries its own idempotency key')
})

t.test('an order turning shipped sends a tracking notification', async (t) => {
  const shipped = withIdentity(fixtureMessages('batch-orders-update-paid')[0]!, 7_000) as { record: Record<string, unknown>, changes: Record<string, unknown> }
  shipped.record.status = 'shipped'
  shipped.changes = { status: 'paid' }
  await service.post({ data: [shipped] })
  await waitFor(() => calls.length === 1, 5_000, 'the notification')
  t.match(calls[0]!.input, { template: 'order-shipped', data: { orderId: 1001 } })
})

t.test('a new user gets a welcome email; an email change a verification email', async (t) => {
  await service.post(fixture('batch-mixed-orders-users'))
  await waitFor(() => calls.some((c) => c.input.template === 'welcome'), 5_000, 'the welcome email')
  const user = withIdentity(fixtureMessages('batch-mixed-orders-users')[1]!, 7_100) as { record: Record<string, unknown>, changes: Record<string, unknown> }
  user.changes = { email: 'old@example.com' }
  await service.post({ data: [user] })
  await waitFor(() => calls.some((c) => c.input.template === 'verify-email'), 5_000, 'the verification email')
  t.match(calls.find((c) => c.input.template === 'verify-email')!.input, { to: user.record.email })
  t.notOk(calls.some((c) => c.effect !== 'sendEmail'), 'the users update did not start fulfilment')
})

t.test('updates without REPLICA IDENTITY FULL cannot say what changed, so nothing starts', async (t) => {
  const response = await service.post(fixture('batch-orders-update-default-replica-identity'))
  t.match(response.json(), { unmatched: 1 })
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(calls.length, 0)
})
