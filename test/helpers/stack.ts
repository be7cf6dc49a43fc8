import { randomBytes } from 'node:crypto'
import pino from 'pino'
import { loadConfig, type Config } from '../../src/config.ts'
import { rowId } from '../../src/ingest/identity.ts'
import { Layout } from '../../src/keys.ts'
import type { LightMyRequestResponse } from 'fastify'
import { createWeb, createWorker, type Web, type Worker } from '../../src/runtime/services.ts'
import { loadWorkflows } from '../../src/workflows/load.ts'
import { fixtureMessages, TOKEN, withIdentity } from '../helpers/service.ts'

export { TOKEN }
export const JOBS_DIR = new URL('../fixtures/jobs', import.meta.url).pathname

export type Message = Record<string, unknown> & { record: Record<string, unknown>, metadata: Record<string, unknown> }
const template = fixtureMessages('batch-orders-insert')[0]!

/** A Sequin message of `table` (schema public), primary key `id`, at commit position `lsn`. */
export function message (table: string, id: number | string, action: string, lsn: number, record: Record<string, unknown> = {}): Message {
  const m = withIdentity(template, lsn) as Message
  m.action = action
  m.metadata.table_name = table
  m.metadata.record_pks = [String(id)]
  m.record = { id, ...record }
  return m
}

/** Order `id` turning from pending to paid: what the `order-flow` fixture workflow runs on. */
export function orderPaid (id: number, lsn: number): Message {
  const m = message('orders', id, 'update', lsn, { status: 'paid' })
  m.changes = { status: 'pending' }
  return m
}

/** The row id of a message's primary key, as planning computes it. */
export function pkRowOf (m: Message): string {
  const md = m.metadata as { database?: { id?: string }, database_name?: string, table_schema: string, table_name: string, record_pks: string[] }
  const source = md.database?.id ?? md.database_name ?? ''
  return rowId(source, md.table_schema, md.table_name, 'pk', md.record_pks)
}

export function keyRowOf (m: Message, key: string): string {
  const md = m.metadata as { database?: { id?: string }, database_name?: string, table_schema: string, table_name: string }
  const source = md.database?.id ?? md.database_name ?? ''
  return rowId(source, md.table_schema, md.table_name, 'key', [key])
}

export function uniquePrefix (): string {
  return `brk-${randomBytes(4).toString('hex')}`
}

export interface Stack {
  config: Config
  layout: Layout
  web: Web
  worker?: Worker
  post (body: unknown): Promise<LightMyRequestResponse>
  close (): Promise<void>
}

/** Web (and workers, unless `workers: false`) in this process, on `target`. */
export async function startStack (env: Record<string, string>, options: { workers?: boolean, redisUrl?: string } = {}): Promise<Stack> {
  const config = loadConfig({ SEQUIN_WEBHOOK_TOKENS: TOKEN, JOBS_DIR, STEP_BACKOFF: '20ms', LOG_LEVEL: 'silent', ...env })
  const logger = pino({ level: config.LOG_LEVEL })
  const workflows = await loadWorkflows(config.JOBS_DIR)
  const redisUrl = options.redisUrl ?? 'redis://unused'
  const web = await createWeb({ config, logger, redisUrl, workflows, tokens: [TOKEN] })
  const worker = options.workers === false ? undefined : createWorker({ config, logger, redisUrl, workflows })
  return {
    config,
    layout: new Layout(config.REDIS_PREFIX, config.REDIS_SHARDS),
    web,
    worker,
    post: (body: unknown) => web.app.inject({ method: 'POST', url: '/webhooks/sequin', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, payload: JSON.stringify(body) }),
    async close () {
      await worker?.close()
      await web.close()
    },
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** An insert as JSON text with `recordJson` spliced in verbatim as its record: for content JSON.stringify cannot write. */
export function messageText (table: string, id: number, lsn: number, recordJson: string): string {
  const m = message(table, id, 'insert', lsn)
  m.record = { placeholder: true }
  return JSON.stringify(m).replace('{"placeholder":true}', recordJson)
}
