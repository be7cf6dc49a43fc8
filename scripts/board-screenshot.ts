/**
 * Opens the dashboard of a running changeflow in a real browser and saves what an operator sees:
 *
 *   node --conditions=changeflow-source --import tsx scripts/board-screenshot.ts [out.png]
 *
 * Starts the service (webhook, dashboard and workers, the project's jobs/) on a free port of
 * 127.0.0.1 under a private key prefix, sends it Sequin fixtures (a paid order, new users, an
 * invalid message), waits for the steps, logs in to /admin/queues in Debian's chromium, checks
 * that the workflow queues, a completed step and the quarantined message with its error are on
 * screen, then deletes its keys. Prints one JSON line; exits 1 when the board did not render.
 * CHROMIUM_PATH overrides `which chromium`.
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import pino from 'pino'
import { chromium } from 'playwright-core'
import { loadConfig } from '../src/config.ts'
import { Metrics } from '../src/metrics.ts'
import { createWeb, createWorker } from '../src/runtime/services.ts'
import { loadWorkflows } from '../src/workflows/load.ts'
import { findChromium } from '../test/helpers/chromium.ts'
import { deleteKeys } from '../test/helpers/service.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const out = resolve(process.argv[2] ?? `${root}test/artifacts/board.png`)
const redisUrl = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const prefix = `shot-${randomBytes(5).toString('hex')}`
const token = randomBytes(24).toString('base64url')
const credentials = { username: 'admin', password: randomBytes(12).toString('base64url') }
const HOST = 'changeflow.test'
const ERROR_TEXT = 'record: expected an object'

const fixture = (name: string) => readFileSync(`${root}test/fixtures/${name}.json`, 'utf8')

async function until (condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** A paid order (three steps), new users, and one message that fails validation. */
async function send (base: string, queues: Map<string, Queue>): Promise<void> {
  const invalid = JSON.parse(fixture('batch-orders-insert')) as { data: Array<Record<string, unknown>> }
  invalid.data[0]!.record = 'not a row'
  for (const body of [fixture('batch-orders-update-paid'), fixture('batch-mixed-orders-users'), JSON.stringify(invalid)]) {
    const response = await fetch(`${base}/webhooks/sequin`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body,
    })
    if (response.status !== 200) throw new Error(`the webhook answered ${response.status}: ${await response.text()}`)
  }
  await until(async () => (await queues.get('order-paid')!.getJobCounts('completed')).completed === 3, 'the paid order\'s three steps')
  await until(async () => (await queues.get('quarantine')!.getJobCounts('failed')).failed === 1, 'the quarantined message')
}

async function main (): Promise<Record<string, unknown>> {
  const executablePath = findChromium()
  if (!executablePath) throw new Error('no chromium binary: apt-get install -y chromium, or set CHROMIUM_PATH')
  const config = loadConfig({ REDIS_URL: redisUrl, REDIS_PREFIX: prefix, SEQUIN_WEBHOOK_TOKENS: token, LOG_LEVEL: 'silent' })
  const logger = pino({ level: 'silent' })
  const workflows = await loadWorkflows(config.JOBS_DIR)
  const metrics = new Metrics()
  const web = await createWeb({ config, logger, redisUrl, workflows, tokens: [token], metrics, board: credentials })
  const worker = createWorker({ config, logger, redisUrl, workflows, metrics })
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null })
  const names = [...workflows.map((workflow) => workflow.name), 'quarantine']
  const queues = new Map(names.map((name) => [name, new Queue(name, { connection: redis, prefix: `{${prefix}}` })]))
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
      // A name that is not loopback, so the browser treats the origin like an internal plain-http
      // host (no localhost exemptions); it still resolves to this machine only.
      `--host-resolver-rules=MAP ${HOST} 127.0.0.1`],
  })
  try {
    const address = await web.app.listen({ host: '127.0.0.1', port: 0 })
    await send(address, queues)
    const base = address.replace('127.0.0.1', HOST)

    const context = await browser.newContext({ httpCredentials: credentials, viewport: { width: 1400, height: 900 } })
    const page = await context.newPage()
    const problems: string[] = []
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
    page.on('console', (message) => {
      // Offline here: Google Fonts cannot load (system fonts are used). Over plain http the
      // browser ignores helmet's Cross-Origin-Opener-Policy and says so; both are harmless.
      if (message.type() === 'error' && !/fonts\.googleapis|ERR_(NAME|INTERNET|CONNECTION)|Cross-Origin-Opener-Policy/.test(message.text())) {
        problems.push(`console: ${message.text()}`)
      }
    })

    await page.goto(`${base}/admin/queues`)
    for (const name of names) {
      await page.getByText(name, { exact: name !== 'quarantine' }).first().waitFor({ timeout: 15_000 })
    }
    await page.getByText('Loading...').waitFor({ state: 'detached', timeout: 15_000 })
    mkdirSync(dirname(out), { recursive: true })
    const overview = out.replace(/\.png$/, '-overview.png')
    await page.screenshot({ path: overview, fullPage: true })
    await page.goto(`${base}/admin/queues/queue/order-paid?status=completed`)
    await page.getByText('send-receipt').first().waitFor({ timeout: 15_000 })
    const steps = out.replace(/\.png$/, '-steps.png')
    await page.screenshot({ path: steps, fullPage: true })
    await page.goto(`${base}/admin/queues/queue/quarantine?status=failed`)
    await page.getByText('invalid-message').first().waitFor({ timeout: 15_000 })
    await page.getByText(ERROR_TEXT).first().waitFor({ timeout: 15_000 })
    await page.getByText('quarantine (invalid messages)').first().waitFor({ timeout: 15_000 })
    await page.screenshot({ path: out, fullPage: true })
    if (problems.length > 0) throw new Error(`the board logged errors:\n${problems.join('\n')}`)
    return { ok: true, screenshot: out, overview, steps, queues: names, job: 'invalid-message' }
  } finally {
    await browser.close()
    await worker.close()
    await web.close()
    await Promise.all([...queues.values()].map((queue) => queue.close()))
    await deleteKeys(redis, `{${prefix}}*`)
    redis.disconnect()
  }
}

try {
  console.log(JSON.stringify(await main()))
} catch (error) {
  console.error((error as Error).stack ?? error)
  process.exitCode = 1
}
