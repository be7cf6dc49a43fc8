import { defineWorkflow } from 'changeflow'
import { effects } from './lib/effects.ts'

/** An order whose status turns `shipped` sends a tracking notification. */
export default defineWorkflow({
  name: 'order-shipped',
  table: 'orders',
  on: ['update'],
  when: (change) => change.changed('status') && change.record.status === 'shipped',
  steps: [
    {
      name: 'send-tracking-notification',
      run: ({ change, idempotencyKey, log }) => effects().sendEmail({
        to: `user:${String(change.record.user_id)}`,
        template: 'order-shipped',
        data: { orderId: change.record.id, trackingNumber: change.record.tracking_number ?? null },
        idempotencyKey,
      }, log),
    },
  ],
})
