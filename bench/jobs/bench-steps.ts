import { defineWorkflow, type Step } from '../../src/workflows/define.ts'

// No-op steps: what is measured is changeflow's per-step overhead, not the work.
const steps: Step[] = [
  { name: 'one', run: () => null },
  { name: 'two', run: () => null },
]

/** Part 2 (steps): the same two steps, with per-row ordering on (the default) and off. */
export default [
  defineWorkflow({ name: 'bench-ordered', table: 'bench_ordered', on: ['update'], steps }),
  defineWorkflow({ name: 'bench-unordered', table: 'bench_unordered', on: ['update'], ordered: false, steps }),
]
