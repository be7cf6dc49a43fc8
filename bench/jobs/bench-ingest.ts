import { defineWorkflow } from '../../src/workflows/define.ts'

/**
 * Part 1 (ingest): one step, never run by the benchmark. The `when` is the shipped order-paid
 * one, so routing does the work a real workflow asks of it.
 */
export default defineWorkflow({
  name: 'bench-ingest',
  table: 'orders',
  on: ['update'],
  when: (change) => change.changed('status') && change.record.status === 'paid',
  steps: [{ name: 'noop', run: () => null }],
})
