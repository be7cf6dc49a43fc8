import { join } from 'node:path'
import t from 'tap'
import { projectRoot } from '../../../src/config.ts'
import { loadWorkflows, WorkflowLoadError } from '../../../src/workflows/load.ts'

function literal (name: string, table = 'orders'): string {
  return `{ name: '${name}', table: '${table}', on: ['insert'], steps: [{ name: 's', run: () => 1 }] }`
}

function module (name: string, table = 'orders'): string {
  return `export default ${literal(name, table)}\n`
}

function workflowList (names: string[]): string {
  return `export default [${names.map((name) => literal(name, 'users')).join(', ')}]\n`
}

t.test('loads every workflow module, sorted by file name', async (t) => {
  const dir = t.testdir({
    'c-last.mjs': module('c'),
    'a-first.mjs': module('a'),
    'b-many.mjs': workflowList(['b2', 'b1']),
  })
  const workflows = await loadWorkflows(dir)
  t.same(workflows.map((w) => w.name), ['a', 'b2', 'b1', 'c'])
  t.equal(workflows[1]!.table, 'users')
  t.equal(workflows[0]!.steps[0]!.run({} as never), 1, 'the module objects themselves are returned')
  t.ok(Object.isFrozen(workflows))
})

t.test('ignores helpers, declarations, tests, other extensions and folders', async (t) => {
  const dir = t.testdir({
    'real.mjs': module('real'),
    '_helper.mjs': 'throw new Error("helpers must not load")\n',
    '.hidden.mjs': 'throw new Error("dotfiles must not load")\n',
    'types.d.ts': 'throw new Error("declarations must not load")\n',
    'real.test.mjs': 'throw new Error("tests must not load")\n',
    'real.spec.mjs': 'throw new Error("specs must not load")\n',
    'notes.md': '# not a module\n',
    'data.json': '{}\n',
    lib: { 'nested.mjs': 'throw new Error("subfolders must not load")\n' },
  })
  const workflows = await loadWorkflows(dir)
  t.same(workflows.map((w) => w.name), ['real'])
})

t.test('an empty folder has no workflows', async (t) => {
  t.same(await loadWorkflows(t.testdir({})), [])
})

t.test('duplicate names across files name both files', async (t) => {
  const dir = t.testdir({ 'one.mjs': module('same'), 'two.mjs': module('same', 'users') })
  const error = await t.rejects(loadWorkflows(dir), WorkflowLoadError) as unknown as Error
  t.ok(error.message.includes(join(dir, 'one.mjs')), 'names the first file')
  t.ok(error.message.includes(join(dir, 'two.mjs')), 'names the second file')
  t.match(error.message, /"same"/)
})

t.test('duplicate names within one file are refused', async (t) => {
  const dir = t.testdir({ 'list.mjs': workflowList(['x', 'x']) })
  await t.rejects(loadWorkflows(dir), { name: 'WorkflowLoadError', message: /list\.mjs.*"x"/ })
})

t.test('load failures name the file', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['an invalid workflow', 'export default { name: "Bad Name", table: "orders", on: ["insert"], steps: [] }\n', /invalid workflow: .*name: /],
    ['an invalid workflow in a list', `export default [${literal('ok')}, { name: 'x' }]\n`, /invalid workflow/],
    ['no default export', 'export const workflow = {}\n', /has no default export/],
    ['a module that throws at import', 'throw new Error("boom at import")\n', /cannot load: boom at import/],
    ['a syntax error', 'export default {\n', /cannot load/],
  ]
  for (const [label, source, message] of cases) {
    // one subtest each: a fresh folder, since ESM caches a module by its path
    t.test(label, async (t) => {
      const dir = t.testdir({ 'a-fine.mjs': module('fine'), 'broken.mjs': source })
      const error = await t.rejects(loadWorkflows(dir), WorkflowLoadError) as unknown as Error
      t.match(error.message, message, 'says why')
      t.ok(error.message.startsWith(join(dir, 'broken.mjs')), 'names the file')
    })
  }
})

t.test('a missing directory throws WorkflowLoadError', async (t) => {
  const dir = join(t.testdir({}), 'nope')
  await t.rejects(loadWorkflows(dir), { name: 'WorkflowLoadError', message: new RegExp(`cannot read JOBS_DIR ${dir}`) })
  const error = await loadWorkflows(dir).catch((e: unknown) => e)
  t.type(error, WorkflowLoadError)
})

t.test('the project jobs/ folder loads', async (t) => {
  const workflows = await loadWorkflows(join(projectRoot, 'jobs'))
  t.same(workflows.map((w) => w.name), ['order-paid', 'order-shipped', 'user-email-changed', 'user-welcome'])
})
