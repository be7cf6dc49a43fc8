import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { projectRoot } from '../../src/config.ts'

// bin/changeflow.js runs the sources where tsx is installed (this checkout) and the build in dist/
// where it is not (npm ci --omit=dev): the same command, as a deployment has it.
const run = (root: string, args: string[]) => spawnSync(process.execPath, [join(root, 'bin/changeflow.js'), ...args], {
  cwd: root,
  env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
  encoding: 'utf8',
})

t.test('in a checkout with tsx: the sources', async (t) => {
  const help = run(projectRoot, ['--help'])
  t.equal(help.status, 0, help.stderr)
  t.match(help.stdout, /Usage: changeflow/)
  t.equal(run(projectRoot, ['no-such-command']).status, 2, 'a usage error exits 2 through the child process')
})

t.test('without the development dependencies: the build in dist/', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'changeflow-deployment-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  cpSync(join(projectRoot, 'bin'), join(root, 'bin'), { recursive: true })
  cpSync(join(projectRoot, 'package.json'), join(root, 'package.json'))
  symlinkSync(join(projectRoot, 'dist'), join(root, 'dist'))
  // Every installed package but tsx, as `npm ci --omit=dev` would leave the loader out.
  mkdirSync(join(root, 'node_modules'))
  for (const name of readdirSync(join(projectRoot, 'node_modules'))) {
    if (name !== 'tsx') symlinkSync(join(projectRoot, 'node_modules', name), join(root, 'node_modules', name))
  }
  const help = run(root, ['--help'])
  t.equal(help.status, 0, help.stderr)
  t.match(help.stdout, /Usage: changeflow/)
  const unknown = run(root, ['no-such-command'])
  t.equal(unknown.status, 2)
  t.match(unknown.stderr, /unknown command/)
})
