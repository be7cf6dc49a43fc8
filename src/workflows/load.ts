import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { describeIssues, workflowSchema, type Workflow } from './define.ts'

export class WorkflowLoadError extends Error {
  override name = 'WorkflowLoadError'
}

const MODULE = /^[^_.][^/]*(?<!\.d)\.(ts|mts|js|mjs)$/

/** Workflow modules are the top-level files of `dir`; `_name` files and folders are helpers. */
export async function loadWorkflows (dir: string): Promise<readonly Workflow[]> {
  let files: string[]
  try {
    files = (await readdir(dir, { withFileTypes: true }))
      .filter((entry) => entry.isFile() && MODULE.test(entry.name) && !/\.(test|spec)\./.test(entry.name))
      .map((entry) => entry.name)
      .sort()
  } catch (error) {
    throw new WorkflowLoadError(`cannot read JOBS_DIR ${dir}: ${(error as Error).message}`)
  }

  const byName = new Map<string, string>()
  const workflows: Workflow[] = []
  for (const file of files) {
    const path = join(dir, file)
    let exported: unknown
    try {
      exported = (await import(pathToFileURL(path).href) as { default?: unknown }).default
    } catch (error) {
      throw new WorkflowLoadError(`${path}: cannot load: ${error instanceof Error ? error.message : String(error)}`)
    }
    if (exported === undefined) throw new WorkflowLoadError(`${path}: has no default export (a workflow or an array of them)`)
    for (const candidate of Array.isArray(exported) ? exported : [exported]) {
      const parsed = workflowSchema.safeParse(candidate)
      if (!parsed.success) throw new WorkflowLoadError(`${path}: invalid workflow: ${describeIssues(parsed.error)}`)
      const workflow = candidate as Workflow
      const other = byName.get(workflow.name)
      if (other) throw new WorkflowLoadError(`${path}: workflow name "${workflow.name}" is already used in ${other}`)
      byName.set(workflow.name, path)
      workflows.push(workflow)
    }
  }
  return Object.freeze(workflows)
}
