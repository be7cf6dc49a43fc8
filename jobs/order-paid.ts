import { defineWorkflow } from 'changeflow'
import { effects } from './lib/effects.ts'

/** An order whose status turns `paid` starts fulfilment. */
export default defineWorkflow({
  name: 'order-paid',
  table: 'orders',
  on: ['update'],
  when: (change) => change.changed('status') && change.record.status === 'paid',
  steps: [
    {
      name: 'reserve-inventory',
      run: ({ change, idempotencyKey, log }) =>
        effects().reserveInventory({ orderId: String(change.record.id), idempotencyKey }, log),
    },
    {
      name: 'create-shipment',
      run: ({ change, results, idempotencyKey, log }) => effects().createShipment({
        orderId: String(change.record.id),
        reservationId: results['reserve-inventory'].reservationId,
        idempotencyKey,
      }, log),
    },
    {
      name: 'send-receipt',
      attempts: 8,
      run: async ({ change, results, idempotencyKey, log }) => {
        const { shipmentId } = results['create-shipment']
        return effects().sendEmail({
          to: `user:${String(change.record.user_id)}`,
          template: 'order-receipt',
          data: { orderId: change.record.id, total: change.record.total_amount, currency: change.record.currency, shipmentId },
          idempotencyKey,
        }, log)
      },
    },
  ],
})
