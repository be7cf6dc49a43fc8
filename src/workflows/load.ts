import { readdir } from 'node:fs/promises'
import { register } from 'node:module'
import { extname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { describeIssues, workflowSchema, type Workflow } from './define.ts'

export class WorkflowLoadError extends Error {
  override name = 'WorkflowLoadError'
}

const MODULE = /^[^_.][^/]*(?<!\.d)\.(ts|mts|js|mjs)$/

let ownNameResolved = false

/**
 * Workflows import the core as 'changeflow', a name Node resolves only inside this package (its
 * package.json `exports`). A JOBS_DIR elsewhere (a mounted folder, a previous release's build)
 * would not load, or would load another copy of the core, whose PermanentError this process's
 * BullMQ does not take as final. So the name resolves to the core this process runs, from anywhere.
 */
function resolveOwnName (): void {
  if (ownNameResolved) return
  ownNameResolved = true
  const core = new URL(`../index${extname(fileURLToPath(import.meta.url))}`, import.meta.url).href
  const hooks = 'export async function resolve (specifier, context, next) {\n' +
    `  return next(specifier === 'changeflow' ? ${JSON.stringify(core)} : specifier, context)\n}\n`
  register(`data:text/javascript,${encodeURIComponent(hooks)}`)
}

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

  resolveOwnName()
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
