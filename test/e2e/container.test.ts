// No container runtime runs here: this runs what the image runs instead. test/setup/before.ts ran
// `npm run build` (the Dockerfile's build stage); the commands, environment and probes below are
// read from the Dockerfile and compose.yaml, then run as processes, against a redis-server started
// with the compose redis service's arguments.
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { join } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { projectRoot } from '../../src/config.ts'
import { freePort } from '../../src/redis/embedded.ts'
import { rowKeyHash } from '../../src/row-keys.ts'
import { startRedisServer } from '../../scripts/lib/redis-server.ts'
import { spawnCommand, type RoleProcess } from '../helpers/processes.ts'
import { fixture, waitFor } from '../helpers/service.ts'

const read = (file: string) => readFileSync(join(projectRoot, file), 'utf8')

/** The Dockerfile's last stage (the image) as [instruction, arguments], continuation lines joined. */
function finalStage (): Array<[string, string]> {
  const instructions = read('Dockerfile').replace(/\\\n\s*/g, '').split('\n')
    .filter((line) => line.trim() && !line.startsWith('#'))
    .map((line): [string, string] => [line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1)])
  return instructions.slice(instructions.findLastIndex(([name]) => name === 'FROM'))
}
const image = finalStage()
const instruction = (name: string) => image.filter(([key]) => key === name).map(([, args]) => args)
const CMD = JSON.parse(instruction('CMD')[0]!) as string[]
const HEALTHCHECK = JSON.parse(instruction('HEALTHCHECK')[0]!.replace(/^.*?CMD /, '')) as string[]

interface ComposeService { command: string[], environment?: Record<string, string>, deploy?: { replicas?: number }, healthcheck?: { test: string[] } }
const SECRETS: Record<string, string> = {
  SEQUIN_WEBHOOK_TOKENS: 'container-test-token-4f9a1c',
  METRICS_TOKEN: 'container-test-scrape-77b2',
  LOG_ROW_KEY_SECRET: 'container-test-row-key-secret-31d8',
}
// compose's ${NAME:?message} from the environment the operator gives it (here: SECRETS).
const compose = parse(read('compose.yaml').replace(/\$\{(\w+):\?[^}]*\}/g, (_all, name: string) => SECRETS[name]!), { merge: true }) as
  { services: Record<string, ComposeService> }
const { redis: redisService, web: webService, worker: workerService } = compose.services as Record<string, ComposeService>

t.test('the image: node as PID 1 in exec form, the webhook by default, a non-root user, production', async (t) => {
  t.same(CMD, ['node', 'dist/src/main/web.js'])
  t.same(instruction('USER'), ['node'])
  t.same(instruction('ENV'), ['NODE_ENV=production'])
  t.match(instruction('RUN')[0], /^npm ci --omit=dev/)
  t.match(HEALTHCHECK, ['node', '-e', /\/healthz/])
  t.same(webService!.command, CMD, "compose's web runs the image's command")
  t.same(workerService!.command, ['node', 'dist/src/main/worker.js'])
  t.same([webService!.deploy?.replicas, workerService!.deploy?.replicas], [2, 2])
  t.match(webService!.healthcheck?.test, ['CMD', 'node', '-e', /127\.0\.0\.1:3000\/readyz/], 'readiness on the default PORT')
  t.equal(webService!.environment?.PORT, undefined, 'which compose leaves at 3000')
  const redisArgs = redisService!.command.join(' ')
  for (const setting of ['--appendonly yes', '--appendfsync everysec', '--maxmemory-policy noeviction']) t.match(redisArgs, setting)
})

/** Every package the build imports is a production dependency: `npm ci --omit=dev` is enough. */
t.test('the build needs no dev dependency at run time', async (t) => {
  const { dependencies } = JSON.parse(read('package.json')) as { dependencies: Record<string, string> }
  const files = readdirSync(join(projectRoot, 'dist'), { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.js'))
  const packages = new Set<string>()
  for (const file of files) {
    const code = read(join('dist', file))
    for (const [, specifier] of code.matchAll(/(?:from|import\(?)\s*['"]([^'".][^'"]*)['"]/g)) {
      const name = specifier!.startsWith('@') ? specifier!.split('/').slice(0, 2).join('/') : specifier!.split('/')[0]!
      if (!name.startsWith('node:') && !builtinModules.includes(name) && name !== 'changeflow') packages.add(name)
    }
  }
  t.ok(files.length > 50, `${files.length} compiled files`)
  t.ok(packages.has('bullmq') && packages.has('fastify'), 'imports were found')
  t.same([...packages].filter((name) => !(name in dependencies)), [], 'every one is a production dependency')
  t.notOk(packages.has('tsx'))
})

/** Runs `command` as compose's probe does: exit 0 is healthy. */
const probe = (command: string[]) => spawnSync(command[0]!, command.slice(1), { encoding: 'utf8', timeout: 10_000 }).status

t.test('web and worker as the image runs them: ready, a batch through, SIGTERM exits 0', async (t) => {
  const redis = await startRedisServer(redisService!.command.slice(1))
  t.teardown(() => redis.stop())
  const [port, metricsPort] = [await freePort(), await freePort()]
  const at = { REDIS_URL: redis.url }
  const webEnv = { ...webService!.environment, ...at, PORT: String(port) }
  const workerEnv = { ...workerService!.environment, ...at, METRICS_PORT: String(metricsPort) }
  const started = Date.now()
  const web = spawnCommand(CMD, webEnv, 'image-web')
  const worker = spawnCommand(workerService!.command, workerEnv, 'image-worker')
  const running: RoleProcess[] = [web, worker]
  t.teardown(() => Promise.all(running.map((process) => process.stop('SIGKILL'))))

  const ready = () => fetch(`http://127.0.0.1:${port}/readyz`).then((response) => response.ok, () => false)
  await waitFor(ready, 20_000, `the web to be ready; its output:\n${web.output()}`)
  const readyMs = Date.now() - started
  const readiness = webService!.healthcheck!.test.slice(1).map((arg) => arg.replace('127.0.0.1:3000', `127.0.0.1:${port}`))
  t.equal(probe(readiness), 0, "compose's readiness probe passes")
  const healthcheck = (env: Record<string, string>) =>
    spawnSync(HEALTHCHECK[0]!, HEALTHCHECK.slice(1), { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 10_000 }).status
  t.equal(healthcheck({ PORT: String(port) }), 0, "the image's HEALTHCHECK passes on the web")
  t.equal(healthcheck({ PORT: String(await freePort()) }), 1, 'and fails where nothing answers')
  await waitFor(() => worker.output().includes('"msg":"workers started"'), 20_000, `the worker to start; its output:\n${worker.output()}`)
  t.equal(healthcheck({ METRICS_PORT: String(metricsPort) }), 0, 'it passes on the worker, through METRICS_PORT')
  t.match(web.output(), `"jobsDir":"${projectRoot}dist/jobs"`, 'the compiled workflows are loaded')

  const response = await fetch(`http://127.0.0.1:${port}/webhooks/sequin`, {
    method: 'POST',
    headers: { authorization: `Bearer ${SECRETS.SEQUIN_WEBHOOK_TOKENS}`, 'content-type': 'application/json' },
    body: JSON.stringify(fixture('batch-orders-update-paid')),
  })
  t.equal(response.status, 200)
  t.same(await response.json(), { accepted: 1, duplicates: 0, unmatched: 0, quarantined: 0, jobs: 1 })
  const completed = () => worker.lines().filter((line) => line.msg === 'step completed')
  await waitFor(() => completed().length === 3, 15_000, 'the three steps of order-paid')
  t.same(completed().map((line) => line.step), ['reserve-inventory', 'create-shipment', 'send-receipt'])
  const hash = rowKeyHash(SECRETS.LOG_ROW_KEY_SECRET!, 'public.orders', ['1001'])
  t.ok(completed().every((line) => line.keyHash === hash && !('key' in line)), 'production logs the row key hashed')

  const signalled = Date.now()
  const [webExit, workerExit] = await Promise.all([web.stop('SIGTERM'), worker.stop('SIGTERM')])
  t.same([webExit.code, webExit.signal], [0, null], 'the web exits 0')
  t.same([workerExit.code, workerExit.signal], [0, null], 'the worker exits 0')
  t.ok(Math.max(webExit.at, workerExit.at) - signalled < 10_000, 'within 10 s, far inside SHUTDOWN_GRACE and compose\'s 30 s')
  t.comment(`started to ready: ${readyMs} ms; SIGTERM to exit: web ${webExit.at - signalled} ms, worker ${workerExit.at - signalled} ms`)
})
