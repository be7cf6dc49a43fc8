import type { Change } from './change.ts'
import type { Workflow } from './define.ts'

export type Routed =
  | { ok: true, workflows: Workflow[] }
  | { ok: false, workflow: string, error: string }

/** Is the change of the workflow's table, whatever its action? */
export function tableMatches (workflow: Workflow, change: Change): boolean {
  const dot = workflow.table.indexOf('.')
  if (dot === -1) return workflow.table === change.table
  return workflow.table === `${change.schema}.${change.table}`
}

/**
 * The workflows a change starts, in declaration order. A `when` that throws is a bug in the
 * workflow, not in the change: the caller quarantines the message with the error.
 */
export function routeChange (workflows: readonly Workflow[], change: Change): Routed {
  const matched: Workflow[] = []
  for (const workflow of workflows) {
    if (!workflow.on.includes(change.action) || !tableMatches(workflow, change)) continue
    try {
      if (workflow.when && !workflow.when(change)) continue
    } catch (error) {
      return { ok: false, workflow: workflow.name, error: `when() threw: ${(error as Error)?.message ?? String(error)}` }
    }
    matched.push(workflow)
  }
  return { ok: true, workflows: matched }
}
