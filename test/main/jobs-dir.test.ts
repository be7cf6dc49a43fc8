// Workflows a deployment keeps apart from the code: a JOBS_DIR outside the project, and plain
// JavaScript modules in jobs/ (README: Writing a workflow, Build and process types).
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { projectRoot } from '../../src/config.ts'
import { spawnCommand, spawnRole, type RoleProcess } from '../helpers/processes.ts'
import { waitFor } from '../helpers/service.ts'

const WORKFLOW = `import { defineWorkflow, PermanentError } from 'changeflow'
import { label } from './_shared/label.js'
export default defineWorkflow({
  name: label,
  table: 'orders',
  on: ['update'],
  steps: [{ name: 'refuse', run: () => { throw new PermanentError('never') } }],
})
`

/**
 * A folder outside the project (no package.json above it names changeflow) holding a .js workflow
 * and its helper: a package of ES modules of its own, as a team's workflows repository would be.
 */
function outsideJobs (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'changeflow-outside-jobs-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n')
  mkdirSync(join(dir, '_shared'))
  writeFileSync(join(dir, '_shared', 'label.js'), 'export const label = \'outside\'\n')
  writeFileSync(join(dir, 'outside.js'), WORKFLOW)
  return dir
}

async function loads (t: Test, worker: RoleProcess): Promise<void> {
  t.teardown(() => worker.stop('SIGKILL'))
  const loaded = () => worker.lines().find((line) => line.msg === 'workflows loaded')
  let exited = false
  worker.exited.then(() => { exited = true }, () => {})
  await waitFor(() => exited || loaded() !== undefined, 20_000, 'the workflows to load')
  if (exited) t.fail(`the worker exited: ${worker.output()}`)
  t.same(loaded()?.workflows, ['outside'], 'the workflow of the outside folder')
}

const ENV = { REDIS_URL: 'redis://127.0.0.1:1', LOG_ROW_KEYS: 'plain' }

t.test("a JOBS_DIR outside the project: its import from 'changeflow' reaches the running build", async (t) => {
  const worker = spawnCommand(['node', 'dist/src/main/worker.js'], { ...ENV, NODE_ENV: 'production', JOBS_DIR: outsideJobs(t) }, 'outside-built')
  await loads(t, worker)
})

t.test("a JOBS_DIR outside the project: its import from 'changeflow' reaches the running sources", async (t) => {
  const worker = spawnRole('worker', { ...ENV, JOBS_DIR: outsideJobs(t) }, 'outside-sources')
  await loads(t, worker)
})

t.test('npm run build compiles JavaScript workflows and helpers of jobs/ along with the TypeScript ones', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'changeflow-build-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  for (const file of ['package.json', 'tsconfig.json', 'tsconfig.build.json']) cpSync(join(projectRoot, file), join(root, file))
  for (const folder of ['src', 'routes', 'node_modules']) symlinkSync(join(projectRoot, folder), join(root, folder))
  mkdirSync(join(root, 'jobs', '_shared'), { recursive: true })
  writeFileSync(join(root, 'jobs', 'outside.js'), WORKFLOW)
  writeFileSync(join(root, 'jobs', 'other.mjs'), 'export default []\n')
  writeFileSync(join(root, 'jobs', '_shared', 'label.js'), 'export const label = \'outside\'\n')
  writeFileSync(join(root, 'jobs', 'typed.ts'), 'export default []\n')
  // What tsc would compile into dist/jobs (the build's program), without writing it.
  const listed = spawnSync(process.execPath, [join(projectRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--listFilesOnly'],
    { cwd: root, encoding: 'utf8' })
  t.equal(listed.status, 0, listed.stderr)
  const jobs = listed.stdout.split('\n').filter((file) => file.startsWith(join(root, 'jobs'))).map((file) => file.slice(root.length + 1)).sort()
  t.same(jobs, ['jobs/_shared/label.js', 'jobs/other.mjs', 'jobs/outside.js', 'jobs/typed.ts'])
})
