import { parseMessage, type MessageIssue, type SequinMessage } from '../sequin/message.ts'
import { toChange } from '../workflows/change.ts'
import type { Workflow } from '../workflows/define.ts'
import { routeChange } from '../workflows/route.ts'
import { changeId, quarantineJobId, runId, stepJobId } from './identity.ts'

/** One BullMQ job to add: `opts` is the JSON of its options. */
export interface JobSpec {
  queue: string
  id: string
  name: string
  data: string
  opts: string
}

export interface PlannedChange {
  changeId: string
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
  /** Messages kept for an operator: they failed the schema, or a workflow's `when` threw. */
  quarantine: Array<JobSpec & Rejection>
  /** Tables whose updates arrived with `changes: {}` (no REPLICA IDENTITY FULL). */
  unknownChanges: Set<string>
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
  table: string
  key: string[]
  action: SequinMessage['action']
  commitTimestamp: string
  change: SequinMessage
}

export function stepJobData (message: SequinMessage, workflow: Workflow, run: string, change: string, stepIndex: number): string {
  const { metadata } = message
  const data: StepJobData = {
    workflow: workflow.name,
    step: workflow.steps[stepIndex]!.name,
    stepIndex,
    run,
    changeId: change,
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
  const plan: BatchPlan = { changes: [], unmatched: 0, quarantine: [], unknownChanges: new Set() }
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
    if (!change.changesKnown) plan.unknownChanges.add(`${change.schema}.${change.table}`)

    const routed = routeChange(workflows, change)
    if (!routed.ok) return quarantine(index, 'routing-error', [{ path: `workflow ${routed.workflow}`, message: routed.error }], raw)
    if (routed.workflows.length === 0) {
      plan.unmatched++
      return
    }
    const id = changeId(message.metadata)
    const jobs = routed.workflows.map((workflow) => {
      const run = runId(id, workflow.name)
      const first = workflow.steps[0]!
      return {
        queue: workflow.name,
        id: stepJobId(run, first.name),
        name: first.name,
        data: stepJobData(message, workflow, run, id, 0),
        opts: options.step(workflow.name, first.name),
      }
    })
    plan.changes.push({ changeId: id, jobs })
  })
  return plan
}
