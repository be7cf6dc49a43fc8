/**
 * Opens the Bull Board in a real browser and saves what an operator sees:
 *
 *   node --import tsx scripts/board-screenshot.ts [out.png]
 *
 * Starts Fastify (helmet + the board) on a free port of 127.0.0.1, fills two queues under a
 * private BullMQ prefix, logs in with basic credentials in Debian's chromium, checks that both
 * queues and a failed quarantine job with its error are on screen, then deletes its keys.
 * Prints one JSON line; exits 1 when the board did not render. CHROMIUM_PATH overrides `which`.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import helmet from '@fastify/helmet'
import { Queue, UnrecoverableError, Worker } from 'bullmq'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { chromium } from 'playwright-core'
import board from '../routes/board.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const out = resolve(process.argv[2] ?? `${root}test/artifacts/board.png`)
const redisUrl = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const prefix = `{t-shot-${randomBytes(5).toString('hex')}}`
const credentials = { username: 'admin', password: randomBytes(12).toString('base64url') }
const HOST = 'changeflow.test'
const ERROR_TEXT = 'record.id: expected string, received number'

function findChromium (): string | null {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH
  try {
    return execFileSync('which', ['chromium'], { encoding: 'utf8' }).trim() || null
  } catch {
    return null
  }
}

async function deleteKeys (redis: Redis, pattern: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    if (keys.length > 0) await redis.del(...keys)
    cursor = next
  } while (cursor !== '0')
}

/** A few steps waiting and delayed, and one quarantined message failed with its error. */
async function seed (redis: Redis, queues: Queue[]): Promise<void> {
  const [orders, quarantine] = queues as [Queue, Queue]
  await orders.add('reserve-inventory', { change: { table: 'orders', record: { id: 41 } } })
  await orders.add('send-receipt', { change: { table: 'orders', record: { id: 42 } } })
  await orders.add('create-shipment', { change: { table: 'orders', record: { id: 43 } } }, { delay: 3_600_000 })
  await quarantine.add('invalid-message', { index: 3, message: { record: { id: 7 } } })
  const connection = redis.duplicate({ maxRetriesPerRequest: null })
  const worker = new Worker(quarantine.name, async () => { throw new UnrecoverableError(ERROR_TEXT) }, { connection, prefix })
  await new Promise((resolve) => worker.once('failed', resolve))
  await worker.close()
  connection.disconnect()
}

async function main (): Promise<Record<string, unknown>> {
  const executablePath = findChromium()
  if (!executablePath) throw new Error('no chromium binary: apt-get install -y chromium, or set CHROMIUM_PATH')
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null })
  const queues = ['order-paid', 'quarantine'].map((name) => new Queue(name, { connection: redis, prefix }))
  const app = Fastify()
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
      // A name that is not loopback, so the browser treats the origin like an internal plain-http
      // host (no localhost exemptions); it still resolves to this machine only.
      `--host-resolver-rules=MAP ${HOST} 127.0.0.1`],
  })
  try {
    await seed(redis, queues)
    await app.register(helmet)
    await app.register(board, { queues, ...credentials, readOnly: false })
    const address = await app.listen({ host: '127.0.0.1', port: 0 })
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
    for (const name of ['order-paid', 'quarantine']) {
      await page.getByText(name, { exact: true }).first().waitFor({ timeout: 15_000 })
    }
    await page.getByText('Loading...').waitFor({ state: 'detached', timeout: 15_000 })
    mkdirSync(dirname(out), { recursive: true })
    const overview = out.replace(/\.png$/, '-overview.png')
    await page.screenshot({ path: overview, fullPage: true })
    await page.goto(`${base}/admin/queues/queue/quarantine?status=failed`)
    await page.getByText('invalid-message').first().waitFor({ timeout: 15_000 })
    await page.getByText(ERROR_TEXT).first().waitFor({ timeout: 15_000 })
    await page.getByText('quarantine (invalid messages)').first().waitFor({ timeout: 15_000 })
    await page.screenshot({ path: out, fullPage: true })
    if (problems.length > 0) throw new Error(`the board logged errors:\n${problems.join('\n')}`)
    return { ok: true, screenshot: out, overview, queues: queues.map((queue) => queue.name), job: 'invalid-message' }
  } finally {
    await browser.close()
    await app.close()
    await Promise.all(queues.map((queue) => queue.close()))
    await deleteKeys(redis, `${prefix}*`)
    redis.disconnect()
  }
}

try {
  console.log(JSON.stringify(await main()))
} catch (error) {
  console.error((error as Error).stack ?? error)
  process.exitCode = 1
}
