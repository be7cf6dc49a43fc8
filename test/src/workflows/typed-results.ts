// Compiled by `npm run typecheck`, never run: each `@ts-expect-error` line must fail to type-check
// (tsc reports an unused one), and every other line must pass. The run-time side is proven in
// typed-results.test.ts.
import { defineWorkflow, type Step } from '../../../src/workflows/define.ts'

export const typed = defineWorkflow({
  name: 'typed',
  table: 'orders',
  on: ['update'],
  steps: [
    { name: 'reserve', run: () => ({ reservationId: 'r-1', at: new Date(), note: undefined as string | undefined }) },
    {
      name: 'ship',
      run: async ({ results }) => {
        const reservationId: string = results.reserve.reservationId
        const at: string = results['reserve'].at // a Date arrives as its ISO text
        // @ts-expect-error a Date does not survive JSON
        const date: Date = results.reserve.at
        // @ts-expect-error a string is not a number
        const count: number = results.reserve.reservationId
        // @ts-expect-error a step's own result is not among the earlier ones
        const own: unknown = results.ship
        // @ts-expect-error nor is a later step's
        const later: unknown = results.notify
        // @ts-expect-error a step that does not exist
        const none: unknown = results['reserv']
        return { shipmentId: `s-${reservationId}`, at, date, count, own, later, none }
      },
    },
    {
      name: 'notify',
      run: ({ results }) => {
        const shipmentId: string = results.ship.shipmentId // the awaited value, not a Promise
        const reservationId: string = results.reserve.reservationId
        const note: string | undefined = results.reserve.note
        return shipmentId.length + reservationId.length + (note?.length ?? 0)
      },
    },
    {
      name: 'nothing-back',
      run: ({ results }) => {
        const length: number = results.notify
        // @ts-expect-error a number has no properties to read
        return results.notify.length + length
      },
    },
    { name: 'void', run: () => {} },
    {
      name: 'after-void',
      run: ({ results }) => {
        const none: null = results.void // undefined is stored as null
        return none
      },
    },
  ],
})

// Steps declared apart, as plain Step values, still fit: their results are `unknown`.
const shared: Step[] = [{ name: 'one', run: () => 1 }, { name: 'two', run: ({ results }) => results.one }]
export const plain = defineWorkflow({ name: 'plain', table: 'orders', on: ['insert'], steps: shared })

// Past the tenth step the first ten stay typed; later ones are `unknown`.
const n = (value: number) => () => value
export const long = defineWorkflow({
  name: 'long',
  table: 'orders',
  on: ['insert'],
  steps: [
    { name: 's1', run: n(1) }, { name: 's2', run: n(2) }, { name: 's3', run: n(3) }, { name: 's4', run: n(4) },
    { name: 's5', run: n(5) }, { name: 's6', run: n(6) }, { name: 's7', run: n(7) }, { name: 's8', run: n(8) },
    { name: 's9', run: n(9) }, { name: 's10', run: () => 'ten' }, { name: 's11', run: ({ results }) => results.s10.length },
    {
      name: 's12',
      run: ({ results }) => {
        const first: number = results.s1
        // @ts-expect-error the eleventh step's result is not typed
        const eleventh: number = results.s11
        return first + eleventh
      },
    },
  ],
})
