import { parseMessage, type MessageIssue, type SequinMessage } from '../sequin/message.ts'
import { toChange, type Change } from '../workflows/change.ts'
import type { Workflow } from '../workflows/define.ts'
import { routeChange } from '../workflows/route.ts'
import { changeId, changeIdentity, quarantineJobId, rowId, runId, stepJobId } from './identity.ts'

/** One BullMQ job to add: `opts` is the JSON of its options. */
export interface JobSpec {
  queue: string
  id: string
  name: string
  data: string
  opts: string
  run?: string
  /** The row whose queue the run joins (its primary key, or the workflow's own key). */
  row?: string
  /** The primary-key row: Sequin orders changes per primary key, so late changes are told by it. */
  pkRow?: string
  /** Joins its row's queue: starts only after the row's earlier runs finished. */
  ordered?: boolean
  /** Dropped instead of run when the change is older than its row's newest. */
  skipLate?: boolean
}

export interface PlannedChange {
  changeId: string
  /** `schema.table` and action: metric labels. */
  table: string
  action: string
  /** Commit position (lsn, idx) as decimal strings; absent for backfill reads. */
  version?: [string, string]
  jobs: JobSpec[]
}

export interface Rejection {
  index: number
  issues: MessageIssue[]
}

export interface BatchPlan {
  /** Valid changes that start at least one workflow, each deduplicated as a whole. */
  changes: PlannedChange[]
  unmatched: number
  /** `schema.table` and action of each unmatched change: metric labels. */
  unmatchedChanges: Array<{ table: string, action: string }>
  /** Messages kept for an operator: they failed the schema, or a workflow's `when` threw. */
  quarantine: Array<JobSpec & Rejection>
  /** Tables whose updates arrived with `changes: {}` (no REPLICA IDENTITY FULL), and how many. */
  unknownChanges: Map<string, number>
}

export interface JobOptions {
  step (workflow: string, step: string): string
  quarantine: string
}

/** The job data every step of a run carries: who it is, then the change itself. */
export interface StepJobData {
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
  change: SequinMessage
}

export function stepJobData (message: SequinMessage, workflow: Workflow, run: string, change: string, row: string | undefined): string {
  const { metadata } = message
  const data: StepJobData = {
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
    change: message,
  }
  return JSON.stringify(data)
}

/** Pure: what a batch of raw messages becomes in Redis. */
export function planBatch (messages: readonly unknown[], workflows: readonly Workflow[], options: JobOptions, now: Date): BatchPlan {
  const plan: BatchPlan = { changes: [], unmatched: 0, unmatchedChanges: [], quarantine: [], unknownChanges: new Map() }
  const quarantine = (index: number, reason: string, issues: MessageIssue[], message: unknown) => {
    const raw = JSON.stringify(message) ?? 'undefined'
    const data = JSON.stringify({ reason, index, issues, receivedAt: now.toISOString(), message })
    plan.quarantine.push({ queue: 'quarantine', id: quarantineJobId(raw), name: reason, data, opts: options.quarantine, index, issues })
  }

  messages.forEach((raw, index) => {
    const parsed = parseMessage(raw)
    if (!parsed.ok) return quarantine(index, 'invalid-message', parsed.issues, raw)
    const { message } = parsed
    const change = toChange(message)
    const table = `${change.schema}.${change.table}`
    if (!change.changesKnown) plan.unknownChanges.set(table, (plan.unknownChanges.get(table) ?? 0) + 1)

    const routed = routeChange(workflows, change)
    const rows = routed.ok ? rowsOf(routed.workflows, change) : routed
    if (!rows.ok) return quarantine(index, 'routing-error', [{ path: `workflow ${rows.workflow}`, message: rows.error }], raw)
    if (rows.rows.length === 0) {
      plan.unmatched++
      plan.unmatchedChanges.push({ table, action: change.action })
      return
    }
    const id = changeId(message.metadata)
    const jobs = rows.rows.map(({ workflow, row }): JobSpec => {
      const run = runId(id, workflow.name)
      const first = workflow.steps[0]!
      const ordered = workflow.ordered !== false && row !== undefined
      return {
        queue: workflow.name,
        id: stepJobId(run, first.name),
        name: first.name,
        data: stepJobData(message, workflow, run, id, ordered ? row : undefined),
        opts: options.step(workflow.name, first.name),
        run,
        row,
        pkRow: rows.pkRow,
        ordered,
        skipLate: workflow.late === 'skip',
      }
    })
    const { commit_lsn: lsn, commit_idx: idx } = message.metadata
    const version: [string, string] | undefined = lsn != null && idx != null ? [String(lsn), String(idx)] : undefined
    plan.changes.push({ changeId: id, table, action: change.action, version, jobs })
  })
  return plan
}

type Rows =
  | { ok: true, rows: Array<{ workflow: Workflow, row: string | undefined }>, pkRow: string | undefined }
  | { ok: false, workflow: string, error: string }

/**
 * A run's row: (source database, schema.table, primary key), or the workflow's own `key` (when it
 * gives no value, the primary key). A table without a primary key and no `key` has no rows: its
 * changes are not ordered, as in Sequin.
 */
function rowsOf (workflows: Workflow[], change: Change): Rows {
  const { source } = changeIdentity(change.metadata)
  const table = `${change.schema}.${change.table}`
  const pks = change.metadata.record_pks ?? []
  const byPk = pks.length > 0 ? rowId(source, table, 'pk', pks) : undefined
  const rows = []
  for (const workflow of workflows) {
    if (!workflow.key) {
      rows.push({ workflow, row: byPk })
      continue
    }
    let key
    try {
      key = workflow.key(change)
    } catch (error) {
      return { ok: false, workflow: workflow.name, error: `key() threw: ${error instanceof Error ? error.message : String(error)}` }
    }
    const parts = (Array.isArray(key) ? key : [key]).filter((part) => part !== null && part !== undefined).map(String)
    rows.push({ workflow, row: parts.length > 0 ? rowId(source, table, 'key', parts) : byPk })
  }
  return { ok: true, rows, pkRow: byPk }
}
