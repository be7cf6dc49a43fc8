import type { Results, Step, Workflow } from './define.ts'

/**
 * What a step's return value is when a later step reads it: it was awaited, stored as JSON and
 * parsed again (a Date arrives as its ISO text, `undefined` as null, functions not at all).
 */
export type StepResult<T> = Json<Awaited<T>>

type Json<T> =
  T extends { toJSON: () => infer J } ? Json<J>
    : T extends string | number | boolean | null ? T
      : T extends undefined | void | symbol | ((...args: never[]) => unknown) ? null
        : T extends readonly unknown[] ? { [I in keyof T]: Json<T[I]> }
          : { [K in keyof T as T[K] extends symbol | ((...args: never[]) => unknown) ? never : K]: Json<Exclude<T[K], undefined>> }

/** `[name, result, name, result, …]` of earlier steps → their `ctx.results`. */
type Earlier<Pairs extends unknown[]> = Pairs extends [infer N extends string, infer O, ...infer Rest]
  ? { readonly [K in N]: StepResult<O> } & Earlier<Rest>
  : Readonly<Record<never, never>>

/**
 * A workflow's steps, each typed by what came before it: step 3's `ctx.results` has the results
 * of steps 1 and 2 under their names. TypeScript infers each step's name and result type from
 * left to right. Steps past the tenth see the first ten typed, and later ones as `unknown`.
 */
export type TypedSteps<
  N1 extends string, O1, N2 extends string, O2, N3 extends string, O3, N4 extends string, O4, N5 extends string, O5,
  N6 extends string, O6, N7 extends string, O7, N8 extends string, O8, N9 extends string, O9, N10 extends string, O10
> = readonly [
  Step<N1, O1, Earlier<[]>>?,
  Step<N2, O2, Earlier<[N1, O1]>>?,
  Step<N3, O3, Earlier<[N1, O1, N2, O2]>>?,
  Step<N4, O4, Earlier<[N1, O1, N2, O2, N3, O3]>>?,
  Step<N5, O5, Earlier<[N1, O1, N2, O2, N3, O3, N4, O4]>>?,
  Step<N6, O6, Earlier<[N1, O1, N2, O2, N3, O3, N4, O4, N5, O5]>>?,
  Step<N7, O7, Earlier<[N1, O1, N2, O2, N3, O3, N4, O4, N5, O5, N6, O6]>>?,
  Step<N8, O8, Earlier<[N1, O1, N2, O2, N3, O3, N4, O4, N5, O5, N6, O6, N7, O7]>>?,
  Step<N9, O9, Earlier<[N1, O1, N2, O2, N3, O3, N4, O4, N5, O5, N6, O6, N7, O7, N8, O8]>>?,
  Step<N10, O10, Earlier<[N1, O1, N2, O2, N3, O3, N4, O4, N5, O5, N6, O6, N7, O7, N8, O8, N9, O9]>>?,
  ...Array<Step<string, unknown, Earlier<[N1, O1, N2, O2, N3, O3, N4, O4, N5, O5, N6, O6, N7, O7, N8, O8, N9, O9, N10, O10]> & Results>>
]

/** A workflow whose steps are typed one after another (the first is required at run time). */
export type TypedWorkflow<Steps> = Omit<Workflow, 'steps'> & { steps: Steps }
