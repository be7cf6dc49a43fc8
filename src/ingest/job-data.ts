import type { SequinMessage } from '../sequin/message.ts'
import type { Workflow } from '../workflows/define.ts'

/** Who a step job is: every field but the change. */
export interface StepJobHeader {
  workflow: string
  step: string
  stepIndex: number
  run: string
  changeId: string
  /** Set when the run is ordered: the row whose queue it is in. */
  row?: string
  table: string
  key: string[]
  action: SequinMessage['action']
  commitTimestamp: string
  /** The change's trace context (W3C traceparent), only while tracing is on (src/tracing). */
  trace?: string
  /**
   * The results of the run's earlier steps, by step name, carried from step to step so that a
   * step's first start reads nothing: `{}` on a first step. Absent on jobs of an earlier release
   * and when the results grew too large to carry (CARRIED_RESULTS_MAX_BYTES): the step then reads
   * them from the run's record, as it does when they lack an earlier step's (a worker of an
   * earlier release passed them on as it found them).
   */
  results?: Record<string, unknown>
}

/** The job data every step of a run carries: who it is, then the change itself. */
export interface StepJobData extends StepJobHeader {
  change: SequinMessage
  /**
   * Set (after the change, by the ingest script) when the change is older than one already
   * accepted for its row: `change.late` for the run's steps.
   */
  late?: true
}

/** The most results (as JSON) a step job carries; past it, the next steps read the run's record. */
export const CARRIED_RESULTS_MAX_BYTES = 16 * 1024

/**
 * A step job's data as JSON text. The change goes last and is serialised once per change (the
 * caller passes its JSON), however many workflows it starts: `{...header, "change": <change>}`.
 */
export function stepJobJson (header: StepJobHeader, changeJson: string): string {
  const head = JSON.stringify(header)
  return `${head.slice(0, -1)},"change":${changeJson}}`
}

export function firstStepHeader (message: SequinMessage, workflow: Workflow, run: string, change: string, row: string | undefined): StepJobHeader {
  const { metadata } = message
  return {
    workflow: workflow.name,
    step: workflow.steps[0]!.name,
    stepIndex: 0,
    run,
    changeId: change,
    row,
    table: `${metadata.table_schema}.${metadata.table_name}`,
    key: metadata.record_pks ?? [],
    action: message.action,
    commitTimestamp: metadata.commit_timestamp,
    results: {},
  }
}

/** A quarantined message's job data: why, where it was in its batch, and the message itself. */
export interface QuarantineJobData {
  reason: string
  index: number
  issues: Array<{ path: string, message: string }>
  receivedAt: string
  /** The message as it arrived; absent when it could not be stored whole. */
  message?: unknown
  /** For a message that could not be stored whole: a bounded excerpt of it. */
  excerpt?: string
}
