import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Queue } from 'bullmq'
import type { LightMyRequestResponse } from 'fastify'
import { Redis } from 'ioredis'
import pino from 'pino'
import { loadConfig, type Config } from '../../src/config.ts'
import { createLogger } from '../../src/logger.ts'
import { Metrics } from '../../src/metrics.ts'
import { createWeb, createWorker, type Web, type Worker } from '../../src/runtime/services.ts'
import { runCli, type CliDeps } from '../../src/cli/program.ts'
import { loadWorkflows } from '../../src/workflows/load.ts'
import { REDIS_URL } from './test-redis.ts'

export const TOKEN = 'test-token-0123456789'
export { REDIS_URL }
export const fixturesDir = new URL('../fixtures/', import.meta.url)

export function fixture (name: string): unknown {
  return JSON.parse(readFileSync(new URL(`${name}.json`, fixturesDir), 'utf8'))
}

export function fixtureMessages (name: string): Array<Record<string, unknown>> {
  const body = fixture(name) as { data?: Array<Record<string, unknown>> }
  return body.data ?? [body as Record<string, unknown>]
}

export interface ServiceOptions {
  env?: Record<string, string>
  /** Start the workers in this process too (default true). */
  workers?: boolean
  redisUrl?: string
  /** Collect the service's log lines (JSON text) here instead of discarding them. */
  logs?: string[]
}

export interface Service {
  config: Config
  web: Web
  worker?: Worker
  redis: Redis
  redisUrl: string
  /** POST a body to the webhook with the test token (or the given headers). */
  post (body: unknown, headers?: Record<string, string>): Promise<LightMyRequestResponse>
  queue (name: string): Queue
  /** Every key this service wrote starts with this. */
  keyPattern: string
  close (): Promise<void>
}

/**
 * The web side and (by default) the workers in this process, under a key prefix no other test
 * file uses, so files run in parallel against one Redis. `close` deletes only that prefix.
 */
export async function startService (options: ServiceOptions = {}): Promise<Service> {
  const prefix = `t-${randomBytes(5).toString('hex')}`
  const redisUrl = options.redisUrl ?? REDIS_URL
  const config = loadConfig({
    REDIS_PREFIX: prefix,
    SEQUIN_WEBHOOK_TOKENS: TOKEN,
    JOBS_DIR: new URL('../fixtures/jobs', import.meta.url).pathname,
    STEP_BACKOFF: '20ms',
    LOG_LEVEL: 'silent',
    ...options.env,
  })
  const logs = options.logs
  const logger = logs
    ? createLogger({ LOG_LEVEL: 'info' }, { write: (line: string) => { logs.push(line) } })
    : pino({ level: config.LOG_LEVEL })
  const workflows = await loadWorkflows(config.JOBS_DIR)
  const metrics = new Metrics() // shared, as under npm start
  const web = await createWeb({ config, logger, redisUrl, workflows, tokens: config.SEQUIN_WEBHOOK_TOKENS, metrics })
  const worker = options.workers === false ? undefined : createWorker({ config, logger, redisUrl, workflows, metrics })
  const redis = new Redis(redisUrl)
  redis.on('error', () => {}) // fault tests stop the server under it; the assertions say what matters
  const queues = new Map<string, Queue>()
  const keyPattern = `{${prefix}}*`
  await waitFor(() => web.redis.status === 'ready' || options.redisUrl !== undefined, 5_000)

  return {
    config,
    web,
    worker,
    redis,
    redisUrl,
    keyPattern,
    post (body, headers = { authorization: `Bearer ${TOKEN}` }) {
      const payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body)
      return web.app.inject({ method: 'POST', url: '/webhooks/sequin', headers: { 'content-type': 'application/json', ...headers }, payload })
    },
    queue (name) {
      let queue = queues.get(name)
      if (!queue) {
        queue = new Queue(name, { connection: redis, prefix: `{${prefix}}` })
        queues.set(name, queue)
      }
      return queue
    },
    async close () {
      await worker?.close()
      await web.close()
      await Promise.all([...queues.values()].map((queue) => queue.close()))
      if (redis.status === 'ready') await deleteKeys(redis, keyPattern)
      redis.disconnect()
    },
  }
}

export async function deleteKeys (redis: Redis, pattern: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    if (keys.length > 0) await redis.del(...keys)
    cursor = next
  } while (cursor !== '0')
}

/** Polls until `condition` holds; fails with `what` after `timeoutMs`. */
export async function waitFor (condition: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** A fresh message: a copy of a fixture message with its own change identity. */
/**
 * The fixture's paid order as a change of its own: commit position `lsn`, on order `base + lsn`
 * (a row no other test file uses when each picks its own base).
 */
export function paidOrderChange (lsn: number, base: number): { record: Record<string, unknown>, metadata: Record<string, unknown> } {
  const message = withIdentity(fixtureMessages('batch-orders-update-paid')[0]!, lsn) as { record: Record<string, unknown>, metadata: Record<string, unknown> }
  message.record.id = base + lsn
  message.metadata.record_pks = [String(message.record.id)]
  return message
}

export function withIdentity (message: Record<string, unknown>, lsn: number, idx = 0): Record<string, unknown> {
  const copy = structuredClone(message) as { metadata: Record<string, unknown> }
  copy.metadata.commit_lsn = lsn
  copy.metadata.commit_idx = idx
  copy.metadata.idempotency_key = Buffer.from(`${lsn}:${idx}`).toString('base64')
  return copy
}

/** Runs `changeflow` in-process against a service's configuration and Redis, capturing what it prints. */
export function cliOf (service: Pick<CliDeps, 'config' | 'redis'>, extra: Partial<CliDeps> = {}) {
  return async (...argv: string[]) => {
    const out: string[] = []
    const err: string[] = []
    const code = await runCli(argv, { config: service.config, redis: service.redis, ...extra, out: (line) => out.push(line), err: (line) => err.push(line) })
    return { code, out, err, stdout: out.join('\n'), stderr: err.join('\n') }
  }
}
