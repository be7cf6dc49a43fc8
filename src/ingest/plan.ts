import { MAX_JSON_DEPTH, nestingDepth, previewJson } from '../json/exact.ts'
import { parseMessage, type MessageIssue, type SequinMessage } from '../sequin/message.ts'
import { comparePositions, positionOf, type Position } from '../sequin/position.ts'
import { toChange, type Change } from '../workflows/change.ts'
import type { Workflow } from '../workflows/define.ts'
import { routeChange, tableMatches } from '../workflows/route.ts'
import { changeId, changeIdentity, contentFingerprint, journalRowId, quarantineJobId, rowId, runId, stepJobId } from './identity.ts'
import { firstStepHeader, stepJobJson } from './job-data.ts'

export type { StepJobData } from './job-data.ts'

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
  /** Its message's position in the batch. */
  index: number
  /** `schema.table` and action: metric labels. */
  table: string
  action: string
  /** Commit position (lsn, idx) as canonical decimal text; absent for backfill reads. */
  version?: Position
  /** Already decided (in the primary-key row's shard) when the runs live in other shards. */
  late?: boolean
  jobs: JobSpec[]
  /**
   * Kept in the change journal when accepted: its entry in the journal's row index, and the byte
   * length of the change's JSON, which ends every job's data (the script copies it from there);
   * and, when its runs are split over shards, every workflow it started (the jobs name only theirs).
   */
  journal?: { row: string, bytes: number, workflows?: string[] }
  /** What the change's JSON hashes to, when asked for (see src/ingest/redelivery.ts). */
  fingerprint?: string
  /** A replay without --force: only runs the change never had are started (see src/journal/replay.ts). */
  again?: boolean
  /**
   * A forced replay's change: when its generation wrote it already (an interrupted replay, or
   * one that selected other workflows), the runs it does not have yet start.
   */
  forced?: boolean
}

export interface Rejection {
  index: number
  issues: MessageIssue[]
}

/** Why a message went to the quarantine: also the quarantine job's name. */
export type QuarantineReason = 'invalid-message' | 'routing-error' | 'unstorable-message'

export interface BatchPlan {
  /** Valid changes that start at least one workflow, in commit order, each deduplicated as a whole. */
  changes: PlannedChange[]
  unmatched: number
  /** `schema.table` and action of each unmatched change: metric labels. */
  unmatchedChanges: Array<{ table: string, action: string, index: number }>
  /** Messages kept for an operator: they failed the schema, a workflow's `when` threw, or they cannot be stored. */
  quarantine: Array<JobSpec & Rejection & { name: QuarantineReason }>
  /** Tables whose updates arrived with `changes: {}` (no REPLICA IDENTITY FULL), and how many. */
  unknownChanges: Map<string, number>
  /**
   * Commit positions of unmatched changes of tables that workflows watch: they are still the
   * newest change of their row, so that an older one arriving later is known to be late.
   */
  positions: Array<{ row: string, version: Position }>
}

export interface JobOptions {
  step (workflow: string, step: string): string
  quarantine: string
}

export interface PlanOptions {
  /** Check each message's nesting depth; the caller may skip it when the whole body is shallow. */
  checkDepth?: boolean
  /** Keep accepted changes in the change journal (JOURNAL_RETENTION > 0). */
  journal?: boolean
  /** The identity a change is planned under, given its own (a forced replay's generation). */
  changeId?: (own: string) => string
  /** Note each change's fingerprint (`contentFingerprint` of its JSON). */
  fingerprints?: boolean
}

/**
 * Pure: what a batch of raw messages becomes in Redis. Each message is planned on its own: one
 * that cannot be (invalid, unroutable, too deep to store) is quarantined and the rest go on.
 */
export function planBatch (messages: readonly unknown[], workflows: readonly Workflow[], options: JobOptions, now: Date, planOptions: PlanOptions = {}): BatchPlan {
  const plan: BatchPlan = { changes: [], unmatched: 0, unmatchedChanges: [], quarantine: [], unknownChanges: new Map(), positions: [] }
  const checkDepth = planOptions.checkDepth ?? true
  messages.forEach((raw, index) => {
    if (checkDepth && nestingDepth(raw) > MAX_JSON_DEPTH) {
      return unstorable(plan, options, now, index, raw, `nested deeper than ${MAX_JSON_DEPTH} levels: too deep to store and run`)
    }
    try {
      planMessage(plan, workflows, options, now, index, raw, planOptions)
    } catch (error) {
      // Whatever one message does (a value JSON cannot hold, a throwing getter), it alone is kept aside.
      unstorable(plan, options, now, index, raw, `cannot be stored: ${(error as Error)?.message ?? String(error)}`)
    }
  })
  // Sequin's order inside a batch means nothing; rows keyed by a workflow's own `key` can share a
  // batch, and their runs must start in commit order. Backfill reads (no position) go last.
  plan.changes.sort((a, b) => comparePositions(a.version, b.version))
  return plan
}

function planMessage (plan: BatchPlan, workflows: readonly Workflow[], options: JobOptions, now: Date, index: number, raw: unknown, planOptions: PlanOptions): void {
  const parsed = parseMessage(raw)
  if (!parsed.ok) return quarantine(plan, options, now, index, 'invalid-message', parsed.issues, raw)
  const { message } = parsed
  const change = toChange(message)
  const table = `${change.schema}.${change.table}`
  if (!change.changesKnown) plan.unknownChanges.set(table, (plan.unknownChanges.get(table) ?? 0) + 1)

  const routed = routeChange(workflows, change)
  const rows = routed.ok ? rowsOf(routed.workflows, change) : routed
  if (!rows.ok) return quarantine(plan, options, now, index, 'routing-error', [{ path: `workflow ${rows.workflow}`, message: rows.error }], raw)
  if (rows.rows.length === 0) {
    plan.unmatched++
    plan.unmatchedChanges.push({ table, action: change.action, index })
    const version = positionOf(message.metadata)
    if (version && rows.pkRow && workflows.some((workflow) => tableMatches(workflow, change))) plan.positions.push({ row: rows.pkRow, version })
    return
  }
  const own = changeId(message.metadata)
  const id = planOptions.changeId?.(own) ?? own
  const changeJson = JSON.stringify(message)
  const jobs = rows.rows.map(({ workflow, row }): JobSpec => jobOf(message, changeJson, workflow, id, row, rows.pkRow, options))
  const journal = planOptions.journal ? { row: journalRowId(change.table, change.metadata.record_pks ?? []), bytes: Buffer.byteLength(changeJson) } : undefined
  const fingerprint = planOptions.fingerprints ? contentFingerprint(changeJson) : undefined
  plan.changes.push({ changeId: id, index, table, action: change.action, version: positionOf(message.metadata), jobs, journal, fingerprint })
}

function jobOf (message: SequinMessage, changeJson: string, workflow: Workflow, change: string, row: string | undefined, pkRow: string | undefined, options: JobOptions): JobSpec {
  const run = runId(change, workflow.name)
  const first = workflow.steps[0]!
  const ordered = workflow.ordered !== false && row !== undefined
  return {
    queue: workflow.name,
    id: stepJobId(run, first.name),
    name: first.name,
    data: stepJobJson(firstStepHeader(message, workflow, run, change, ordered ? row : undefined), changeJson),
    opts: options.step(workflow.name, first.name),
    run,
    row,
    pkRow,
    ordered,
    skipLate: workflow.late === 'skip',
  }
}

function quarantine (plan: BatchPlan, options: JobOptions, now: Date, index: number, reason: QuarantineReason, issues: MessageIssue[], message: unknown): void {
  const raw = JSON.stringify(message) ?? 'undefined'
  const data = JSON.stringify({ reason, index, issues, receivedAt: now.toISOString(), message })
  plan.quarantine.push({ queue: 'quarantine', id: quarantineJobId(raw), name: reason, data, opts: options.quarantine, index, issues })
}

/** Kept as a bounded excerpt with the reason: the message itself cannot be serialised whole. */
function unstorable (plan: BatchPlan, options: JobOptions, now: Date, index: number, message: unknown, why: string): void {
  const excerpt = previewJson(message)
  const issues = [{ path: '(message)', message: why }]
  const data = JSON.stringify({ reason: 'unstorable-message', index, issues, receivedAt: now.toISOString(), excerpt })
  const key = (message as { metadata?: { idempotency_key?: unknown } } | null)?.metadata?.idempotency_key
  const id = quarantineJobId(`${typeof key === 'string' ? key : ''}\n${excerpt}`)
  plan.quarantine.push({ queue: 'quarantine', id, name: 'unstorable-message', data, opts: options.quarantine, index, issues })
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
  const pks = change.metadata.record_pks ?? []
  const byPk = pks.length > 0 ? rowId(source, change.schema, change.table, 'pk', pks) : undefined
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
    rows.push({ workflow, row: parts.length > 0 ? rowId(source, change.schema, change.table, 'key', parts) : byPk })
  }
  return { ok: true, rows, pkRow: byPk }
}
