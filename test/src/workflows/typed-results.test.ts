import { spawnSync } from 'node:child_process'
import t from 'tap'
import { projectRoot } from '../../../src/config.ts'
import { seen } from '../../fixtures/typed-jobs/_seen.ts'
import { fixtureMessages, startService, waitFor, withIdentity } from '../../helpers/service.ts'

// The type-level side is typed-results.ts, compiled by npm run typecheck.

t.test('a later step reads earlier results as their types say: awaited, then through JSON', async (t) => {
  const service = await startService({ env: { JOBS_DIR: `${projectRoot}test/fixtures/typed-jobs` } })
  t.teardown(() => service.close())
  const paid = withIdentity(fixtureMessages('batch-orders-update-paid')[0]!, 40_000)
  t.match((await service.post({ data: [paid] })).json(), { accepted: 1, jobs: 1 })
  await waitFor(() => seen.length === 2, 10_000, 'both later steps')
  t.same(seen, [
    { step: 'ship', at: '2026-01-02T00:00:00.000Z', reservationId: 'res-1', keys: ['reservationId', 'at'] },
    { step: 'done', ship: null, reservationId: 'res-1' },
  ], 'a Date as its ISO text, an undefined field dropped, an undefined result as null')
})

/** Where `import … from 'changeflow'` leads a process started with these Node arguments. */
function resolved (args: string[]): string {
  const child = spawnSync(process.execPath, [...args, '--input-type=module', '-e', "console.log(import.meta.resolve('changeflow'))"], {
    cwd: projectRoot,
    encoding: 'utf8',
  })
  return child.stdout.trim() || child.stderr
}

t.test("workflows' `changeflow` import: the sources under the source condition, the build otherwise", async (t) => {
  t.equal(import.meta.resolve('changeflow'), `file://${projectRoot}src/index.ts`, 'this test process (tap runs the sources)')
  t.equal(resolved(['--conditions=changeflow-source']), `file://${projectRoot}src/index.ts`)
  t.equal(resolved([]), `file://${projectRoot}dist/src/index.js`, 'plain node, as in production')
})
