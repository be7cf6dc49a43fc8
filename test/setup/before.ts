// Runs once before the suite (tap's `before`): builds dist/ (the production commands the tests
// run are `node dist/...`), and makes sure a Redis answers, so that `npm test` works on a machine
// where none runs, as `npm start` does. Tests that break Redis start their own.
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { DEFAULT_REDIS_URL, projectRoot } from '../../src/config.ts'
import { redisAnswers } from '../../src/redis/connection.ts'
import { freePort } from '../../src/redis/embedded.ts'
import { startedRedisFile } from '../helpers/test-redis.ts'

const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: projectRoot, stdio: ['ignore', 2, 2] })
if (build.error || build.status !== 0) {
  console.error('test setup: npm run build failed; the tests of the production commands need dist/')
  process.exit(1)
}

rmSync(startedRedisFile, { force: true })
if (!process.env.TEST_REDIS_URL && !(await redisAnswers(DEFAULT_REDIS_URL))) {
  const dir = mkdtempSync(join(tmpdir(), 'changeflow-test-redis-'))
  const port = await freePort()
  const started = spawnSync('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
    '--daemonize', 'yes', '--pidfile', join(dir, 'redis.pid'), '--logfile', join(dir, 'redis.log'),
  ])
  if (started.error || started.status !== 0) {
    console.error('The tests need Redis: nothing answers on 127.0.0.1:6379, TEST_REDIS_URL is not set, and redis-server could not be started (install it: apt-get install -y redis-server).')
    process.exit(1)
  }
  const url = `redis://127.0.0.1:${port}`
  for (let i = 0; i < 100 && !(await redisAnswers(url)); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  mkdirSync(dirname(startedRedisFile), { recursive: true })
  writeFileSync(startedRedisFile, JSON.stringify({ url, dir, pidfile: join(dir, 'redis.pid') }))
  console.error(`test setup: no Redis on 127.0.0.1:6379, started one at ${url} for the suite`)
}
