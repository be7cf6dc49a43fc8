import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { projectRoot } from '../../src/config.ts'
import { freePort } from '../../src/redis/embedded.ts'
import { startRedisServer } from '../../scripts/lib/redis-server.ts'
import { fixture, waitFor } from '../helpers/service.ts'

interface Running {
  output: () => string
  exited: Promise<number | null>
  kill: (signal: NodeJS.Signals) => void
}

/** Runs an npm script of the project, as the README does (`wrap` runs it inside another command). */
function start (script: 'start' | 'dev' | 'web' | 'worker', env: Record<string, string>, wrap: string[] = []): Running {
  const command = [...wrap, 'npm', 'run', '--silent', script]
  const child = spawn(command[0]!, command.slice(1), {
    cwd: projectRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: signals go to npm and the service together, as Ctrl-C in a terminal does.
    detached: true,
  })
  let output = ''
  child.stdout.on('data', (chunk) => { output += chunk })
  child.stderr.on('data', (chunk) => { output += chunk })
  // 'close': the process exited and every process sharing its output (the service) is gone too.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)))
  const kill = (signal: NodeJS.Signals) => {
    try { process.kill(-child.pid!, signal) } catch {}
  }
  return { output: () => output, exited, kill }
}

t.test('npm start: generates a token, runs a fixture through to completed steps, stops on SIGTERM', async (t) => {
  const redis = await startRedisServer()
  t.teardown(() => redis.stop())
  const dataDir = t.testdir({})
  const port = await freePort()
  const service = start('start', { REDIS_URL: redis.url, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir })
  t.teardown(() => service.kill('SIGKILL'))
  // The banner goes to stderr after listening: wait for its last line, the dashboard's.
  await waitFor(() => service.output().includes('/admin/queues (user'), 15_000, 'the server to listen and print its banner')

  const token = readFileSync(join(dataDir, 'webhook-token'), 'utf8').trim()
  t.match(service.output(), token, 'the generated token is printed for the newcomer')
  t.match(service.output(), 'http_endpoint_path: "/webhooks/sequin"', 'with a Sequin sink snippet')
  const password = readFileSync(join(dataDir, 'board-password'), 'utf8').trim()
  t.match(service.output(), `/admin/queues (user "admin", password ${password}`, 'and the generated dashboard login')

  const response = await fetch(`http://127.0.0.1:${port}/webhooks/sequin`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(fixture('batch-orders-update-paid')),
  })
  t.equal(response.status, 200)
  const completed = () => service.output().split('\n').filter((line) => line.includes('"msg":"step completed"'))
  await waitFor(() => completed().length === 3, 10_000, 'three completed steps in the log')
  t.match(completed().at(-1), '"step":"send-receipt"', 'the last step of order-paid ran last')
  t.match(service.output(), `"jobsDir":"${projectRoot}dist/jobs"`, 'the build runs the compiled workflows')

  service.kill('SIGTERM')
  await service.exited // npm reports the signal; what matters is that the service shut down in order
  t.match(service.output(), '"signal":"SIGTERM","msg":"shutting down"')
  t.match(service.output(), '"msg":"stopped"')
})

t.test('npm run dev runs the TypeScript sources and their workflows, without a build', async (t) => {
  const redis = await startRedisServer()
  t.teardown(() => redis.stop())
  const service = start('dev', { REDIS_URL: redis.url, PORT: String(await freePort()), HOST: '127.0.0.1', DATA_DIR: t.testdir({}) })
  t.teardown(() => service.kill('SIGKILL'))
  await waitFor(() => service.output().includes('"msg":"workers started"'), 20_000, 'the server to listen and the workers to start')
  t.match(service.output(), `"jobsDir":"${projectRoot}jobs","workflows":["order-paid",`)
  service.kill('SIGTERM')
  await service.exited
  t.match(service.output(), '"msg":"stopped"')
})

// A network namespace of its own: nothing answers on 127.0.0.1:6379 there, as on a fresh machine.
const isolated = ['unshare', '--net', 'sh', '-c', 'ip link set lo up && exec "$@"', 'isolated']
const canIsolate = spawnSync('unshare', ['--net', 'true']).status === 0 && spawnSync('which', ['redis-server']).status === 0

t.test('npm start with no Redis anywhere runs a private redis-server and stops it on exit', {
  skip: canIsolate ? false : 'needs unshare --net (root) and redis-server',
}, async (t) => {
  const dataDir = t.testdir({})
  const service = start('start', { DATA_DIR: dataDir, HOST: '127.0.0.1' }, isolated)
  t.teardown(() => service.kill('SIGKILL'))
  // The workers start after the web listens (and prints its banners): wait for the last of them.
  await waitFor(() => service.output().includes('"msg":"workers started"'), 20_000, 'the server to listen and the workers to start')
  t.match(service.output(), 'Server listening')
  t.match(service.output(), 'started a private redis-server (AOF on, noeviction)')
  service.kill('SIGTERM')
  await service.exited
  t.match(service.output(), '"msg":"stopped"')
  t.ok(readdirSync(join(dataDir, 'redis')).some((name) => name.startsWith('appendonly')), 'its data is kept under DATA_DIR/redis')
})

/** The exit code, or a failure when the process is still running after `ms`. */
async function exitsWithin (t: Test, service: Running, ms = 20_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'running'>((resolve) => { timer = setTimeout(() => resolve('running'), ms) })
  const result = await Promise.race([service.exited, late]).finally(() => clearTimeout(timer))
  if (result === 'running') {
    service.kill('SIGKILL')
    t.fail(`still running after ${ms} ms; its output ends with:\n${service.output().slice(-2000)}`)
    return null
  }
  return result
}

const PRODUCTION = { NODE_ENV: 'production', SEQUIN_WEBHOOK_TOKENS: 'tok', HOST: '127.0.0.1' }

const listening = (service: Running, port: number) =>
  waitFor(() => service.output().includes(`Server listening at http://127.0.0.1:${port}`), 20_000, `a listener on ${port}`)

t.test('production: the web refuses to start while /metrics would be open on its port', async (t) => {
  const env = { ...PRODUCTION, REDIS_URL: 'redis://127.0.0.1:1', DATA_DIR: t.testdir({}), PORT: String(await freePort()) }
  const service = start('web', env)
  t.teardown(() => service.kill('SIGKILL'))
  t.equal(await exitsWithin(t, service), 1)
  t.match(service.output(), 'METRICS_TOKEN or METRICS_PORT is required with NODE_ENV=production')
  t.notMatch(service.output(), 'Server listening', 'nothing was served')
})

t.test('production: npm start without REDIS_URL refuses, and starts no private redis-server', async (t) => {
  const dataDir = t.testdir({})
  const env = { ...PRODUCTION, METRICS_TOKEN: 'scrape', DATA_DIR: dataDir, PORT: String(await freePort()) }
  // Isolated where possible: nothing answers on 127.0.0.1:6379 there, so before this refusal a private one was started.
  const service = start('start', env, canIsolate ? isolated : [])
  t.teardown(() => service.kill('SIGKILL'))
  t.equal(await exitsWithin(t, service), 1)
  t.match(service.output(), 'REDIS_URL (or REDIS_CLUSTER_NODES) is required with NODE_ENV=production')
  t.notMatch(service.output(), 'private redis-server (AOF on')
  t.notOk(existsSync(join(dataDir, 'redis')), 'no Redis data folder was made')
})

t.test('METRICS_PORT: the web serves /metrics there and not on the webhook port', async (t) => {
  const redis = await startRedisServer()
  t.teardown(() => redis.stop())
  const [port, metricsPort] = [await freePort(), await freePort()]
  const env = { ...PRODUCTION, REDIS_URL: redis.url, DATA_DIR: t.testdir({}), PORT: String(port), METRICS_PORT: String(metricsPort) }
  const service = start('web', env)
  t.teardown(() => service.kill('SIGKILL'))
  await Promise.all([listening(service, port), listening(service, metricsPort)])

  const onWebhookPort = await fetch(`http://127.0.0.1:${port}/metrics`)
  t.equal(onWebhookPort.status, 404)
  t.match(await onWebhookPort.json(), { statusCode: 404, code: 'CF_NOT_FOUND' })
  const scraped = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
  t.equal(scraped.status, 200)
  t.match(await scraped.text(), '# TYPE changeflow_http_requests_total counter', "the web's registry")
  t.equal((await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status, 200)
  t.equal((await fetch(`http://127.0.0.1:${metricsPort}/webhooks/sequin`, { method: 'POST' })).status, 404, 'no webhook there')

  service.kill('SIGTERM')
  await service.exited
  t.match(service.output(), '"msg":"stopped"')
})

t.test('a worker-only process serves /metrics when METRICS_PORT is set', async (t) => {
  const redis = await startRedisServer()
  t.teardown(() => redis.stop())
  const metricsPort = await freePort()
  const worker = start('worker', { REDIS_URL: redis.url, HOST: '127.0.0.1', METRICS_PORT: String(metricsPort) })
  t.teardown(() => worker.kill('SIGKILL'))
  await listening(worker, metricsPort)
  const scraped = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
  t.equal(scraped.status, 200)
  t.match(await scraped.text(), '# TYPE changeflow_steps_completed_total counter', "the workers' registry")
  worker.kill('SIGTERM')
  await worker.exited
  t.match(worker.output(), '"msg":"stopped"')
})

t.test('production refuses to start without a webhook token', async (t) => {
  const service = start('web', { NODE_ENV: 'production', REDIS_URL: 'redis://127.0.0.1:1', DATA_DIR: t.testdir({}) })
  t.equal(await service.exited, 1)
  t.match(service.output(), 'SEQUIN_WEBHOOK_TOKENS is required')
})

t.test('an invalid workflow stops startup with a message naming its file', async (t) => {
  const jobs = t.testdir({ 'broken.mjs': 'export default { name: "Bad Name", table: "orders", on: ["insert"], steps: [] }' })
  const service = start('worker', { JOBS_DIR: jobs, REDIS_URL: 'redis://127.0.0.1:1' })
  t.equal(await service.exited, 1)
  t.match(service.output(), join(jobs, 'broken.mjs'))
  t.match(service.output(), 'workflow names are [a-z0-9-]+')
})

t.test('bad configuration stops startup naming the key', async (t) => {
  const service = start('web', { PORT: 'eighty', DATA_DIR: t.testdir({}) })
  t.equal(await service.exited, 1)
  t.match(service.output(), 'PORT')
})

t.test('a worker-only process checks Redis too, and says what is wrong', async (t) => {
  const redis = await startRedisServer(['--maxmemory-policy', 'allkeys-lru'])
  t.teardown(() => redis.stop())
  const worker = start('worker', { REDIS_URL: redis.url })
  t.teardown(() => worker.kill('SIGKILL'))
  await waitFor(() => worker.output().includes('maxmemory-policy'), 15_000, 'the check to report')
  t.match(worker.output(), /"level":50.*maxmemory-policy is allkeys-lru/)
  worker.kill('SIGTERM')
  await worker.exited
  t.match(worker.output(), '"msg":"stopped"')
  t.notMatch(worker.output(), 'Server listening', 'without METRICS_PORT it listens on no port')
})
