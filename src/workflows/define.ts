import { UnrecoverableError } from 'bullmq'
import type { Logger } from 'pino'
import { z } from 'zod'
import { actions, type Action } from '../sequin/message.ts'
import type { Change } from './change.ts'
import type { TypedSteps, TypedWorkflow } from './typed.ts'

export interface Backoff {
  type: 'exponential' | 'fixed'
  /** Milliseconds: the first wait (exponential doubles it each retry) or every wait (fixed). */
  delay: number
}

/** The results of the run's earlier steps, by step name (see StepResults in ./typed.ts). */
export type Results = Readonly<Record<string, unknown>>

export interface StepContext<Earlier extends Results = Results> {
  readonly change: Change
  /** JSON return values of the run's earlier steps, by step name: typed by defineWorkflow. */
  readonly results: Earlier
  /** 1 on the first execution, 2 on the first retry, and so on. */
  readonly attempt: number
  readonly log: Logger
  /**
   * Stable per (change, workflow, step): the same on every retry, re-run, replica and redelivery.
   * Pass it to providers (payments, email) so their side effect happens once.
   */
  readonly idempotencyKey: string
  readonly workflow: string
  readonly step: string
}

export interface Step<Name extends string = string, Result = unknown, Earlier extends Results = Results> {
  name: Name
  run: (ctx: StepContext<Earlier>) => Result
  attempts?: number
  backoff?: Backoff
}

export interface Workflow {
  /** Unique, `[a-z0-9-]+`; also the name of its queue in the dashboard. */
  name: string
  /** `table_name`, or `schema.table`. */
  table: string
  on: readonly Action[]
  when?: (change: Change) => boolean
  steps: readonly Step[]
  /**
   * Runs of one row start in the order their changes were accepted, each after the row's
   * earlier runs (of every ordered workflow) finished. Default true; false runs at once.
   */
  ordered?: boolean
  /** The row a change belongs to, when not its primary key (or the table has none). */
  key?: (change: Change) => string | number | ReadonlyArray<string | number>
  /**
   * A change older than the newest accepted for its row (Sequin retried it after a newer one
   * went through): 'run' (default) runs it with `change.late` set; 'skip' drops it, for steps
   * that only sync the newest state.
   */
  late?: 'run' | 'skip'
}

/** A step failure that retrying cannot fix: the step fails at once, without further attempts. */
export class PermanentError extends UnrecoverableError {
  override name = 'PermanentError'
}

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/
const RESERVED = new Set(['quarantine'])

const stepSchema = z.object({
  name: z.string().regex(NAME, 'step names are [a-z0-9-]+, starting with a letter or digit'),
  run: z.custom<Step['run']>((value) => typeof value === 'function', 'run must be a function'),
  attempts: z.number().int().min(1).max(1000).optional(),
  backoff: z.object({
    type: z.enum(['exponential', 'fixed']),
    delay: z.number().int().min(0),
  }).strict().optional(),
}).strict()

export const workflowSchema = z.object({
  name: z.string()
    .regex(NAME, 'workflow names are [a-z0-9-]+, starting with a letter or digit')
    .refine((name) => !RESERVED.has(name), 'this name is reserved'),
  table: z.string().regex(/^[^.\s]+(\.[^.\s]+)?$/, 'table is "table_name" or "schema.table"'),
  on: z.array(z.enum(actions)).min(1, 'on lists at least one action'),
  when: z.custom<NonNullable<Workflow['when']>>((value) => typeof value === 'function', 'when must be a function').optional(),
  steps: z.array(stepSchema).min(1, 'a workflow needs at least one step')
    .refine((steps) => new Set(steps.map((step) => step.name)).size === steps.length, 'step names must be unique'),
  ordered: z.boolean().optional(),
  key: z.custom<NonNullable<Workflow['key']>>((value) => typeof value === 'function', 'key must be a function').optional(),
  late: z.enum(['run', 'skip']).optional(),
}).strict()

/**
 * Types a workflow and checks its shape; a plain object of the same shape works as well. Each
 * step's `ctx.results` is typed from the earlier steps' return values (see TypedSteps).
 */
export function defineWorkflow<
  N1 extends string, O1, N2 extends string, O2, N3 extends string, O3, N4 extends string, O4, N5 extends string, O5,
  N6 extends string, O6, N7 extends string, O7, N8 extends string, O8, N9 extends string, O9, N10 extends string, O10
> (workflow: TypedWorkflow<TypedSteps<N1, O1, N2, O2, N3, O3, N4, O4, N5, O5, N6, O6, N7, O7, N8, O8, N9, O9, N10, O10>>): Workflow
export function defineWorkflow (workflow: TypedWorkflow<readonly unknown[]>): Workflow {
  const parsed = workflowSchema.safeParse(workflow)
  if (!parsed.success) throw new Error(describeIssues(parsed.error))
  // Its steps' contexts are narrower than Step's: each sees the results of the steps before it.
  return workflow as Workflow
}

export function describeIssues (error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || '(workflow)'}: ${issue.message}`).join('; ')
}
