import { defineWorkflow } from '../../src/workflows/define.ts'

/**
 * Part 3 (memory): the shipped order-paid shape, three steps with small results, so that what a
 * change keeps in Redis while its run waits, runs and after it finished can be measured.
 */
export default defineWorkflow({
  name: 'bench-memory',
  table: 'bench_memory',
  on: ['update'],
  steps: [
    { name: 'reserve-inventory', run: ({ change }) => ({ reservationId: `res_${String(change.record.id)}` }) },
    { name: 'create-shipment', run: ({ change }) => ({ shipmentId: `shp_${String(change.record.id)}`, carrier: 'dhl' }) },
    { name: 'send-receipt', run: () => ({ messageId: 'msg_0123456789' }) },
  ],
})
