// The receiver a user would write by hand instead of changeflow: a Fastify route that checks the
// token, validates every message with zod, keeps the ones a workflow wants (the same `when` as
// bench/jobs/bench-ingest.ts) and enqueues one BullMQ job each with `addBulk` (or, with
// RECEIVER=naive, `await queue.add` one at a time). No dedup beyond the job id, no ordering, no
// atomic batch, no quarantine. Its own process, run by bench/http.ts.
import { Queue } from 'bullmq'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { z } from 'zod'

const env = process.env
const token = `Bearer ${env.TOKEN ?? ''}`
const naive = env.RECEIVER === 'naive'

const message = z.object({
  action: z.enum(['insert', 'update', 'delete', 'read']),
  record: z.record(z.string(), z.unknown()),
  changes: z.record(z.string(), z.unknown()).nullable(),
  metadata: z.object({
    table_schema: z.string(),
    table_name: z.string(),
    commit_timestamp: z.string(),
    commit_lsn: z.number().int().nullable(),
    commit_idx: z.number().int().nullable(),
    idempotency_key: z.string(),
    record_pks: z.array(z.string()),
  }).passthrough(),
})
type Message = z.infer<typeof message>

const wanted = (m: Message) => m.action === 'update' && m.metadata.table_name === 'orders' &&
  m.changes !== null && 'status' in m.changes && m.record.status === 'paid'

const redis = new Redis(env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 })
const queue = new Queue('bench-ingest', { connection: redis, prefix: `{${env.PREFIX ?? 'bare'}}` })
const opts = { attempts: 5, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: { age: 86_400, count: 1000 }, removeOnFail: false }

const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 })
app.post('/webhooks/sequin', async (request, reply) => {
  if (request.headers.authorization !== token) return reply.code(401).send({ error: 'unauthorized' })
  const body = request.body as { data?: unknown[] }
  const messages = (Array.isArray(body.data) ? body.data : [body]).map((raw) => message.parse(raw))
  const jobs = messages.filter(wanted).map((m) => ({ name: 'noop', data: m, opts: { ...opts, jobId: `bench-ingest.${m.metadata.idempotency_key}` } }))
  if (naive) for (const job of jobs) await queue.add(job.name, job.data, job.opts)
  else await queue.addBulk(jobs)
  return { accepted: jobs.length }
})
await app.listen({ host: '127.0.0.1', port: Number(env.PORT ?? 0) })
process.stdout.write(`listening ${(app.server.address() as { port: number }).port}\n`)
process.on('SIGTERM', () => { app.close().then(() => queue.close()).then(() => redis.disconnect()).catch(() => {}).finally(() => process.exit(0)) })
