import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { commitPlan } from '../src/ingest/commit.ts'
import { createIngest, type Counts } from '../src/ingest/ingest.ts'
import { createJobOptions } from '../src/ingest/job-options.ts'
import { planBatch, type BatchPlan } from '../src/ingest/plan.ts'
import { Keyspace, Layout } from '../src/keys.ts'
import { Metrics } from '../src/metrics.ts'
import type { ScriptedRedis } from '../src/redis/scripts.ts'
import type { Web } from '../src/runtime/services.ts'
import { bareJob } from './lib/bare.ts'
import { TOKEN, type Context } from './lib/context.ts'
import { inParallel, startClock } from './lib/measure.ts'
import { runRounds, type Scenario } from './lib/rounds.ts'
import { fixed, rate, ratio, table } from './lib/table.ts'
import { distinctRowBatches, type Batch } from './lib/workload.ts'

const WORKFLOW = 'bench-ingest'
const BARE_QUEUE = 'bench-bare'
const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }

function expectAccepted (status: number, text: string, batch: Batch): void {
  const size = batch.messages.length
  const counts = status === 200 ? JSON.parse(text) as Counts : undefined
  if (counts?.accepted !== size || counts.jobs !== size) {
    throw new Error(`changeflow answered ${status} ${text.slice(0, 300)} to a batch of ${size} new changes (expected all accepted, one job each)`)
  }
}

/**
 * Part 1: messages per second from a Sequin batch to BullMQ jobs in Redis, with every guarantee
 * (token, validation, routing, dedup, per-row ordering, one atomic script per batch), against
 * bare `Queue.addBulk` of the same jobs.
 */
export async function benchIngest (ctx: Context): Promise<string> {
  const { settings, prefix } = ctx
  const metrics = new Metrics()
  const web = await ctx.web(metrics)
  const bareRedis = new Redis(settings.redisUrl, { maxRetriesPerRequest: 1 })
  const bare = new Queue(BARE_QUEUE, { connection: bareRedis, prefix: `{${prefix}}` })
  bare.on('error', () => {})
  try {
    return await measureIngest(ctx, web, bare)
  } finally {
    await bare.close()
    bareRedis.disconnect()
    await web.close()
  }
}

async function measureIngest (ctx: Context, web: Web, bare: Queue): Promise<string> {
  const { settings, config, prefix, workflows } = ctx
  // Loopback only: the figures are changeflow's, not a network's.
  const address = await web.app.listen({ host: '127.0.0.1', port: 0 })
  const url = `${address}/webhooks/sequin`
  const keys = new Keyspace(prefix)
  const jobOptions = createJobOptions(workflows, config)
  const stepOpts = JSON.parse(jobOptions.step(WORKFLOW, 'noop')) as Record<string, unknown>
  const ingest = createIngest({ redis: web.redis as ScriptedRedis, layout: new Layout(prefix), workflows, jobOptions, config, metrics: new Metrics({ defaultMetrics: false }) })
  const quiet = { warn: () => {}, error: () => {} }
  // A quarter-size warm-up: enough for the JIT to settle on BullMQ's and changeflow's hot paths.
  const count = (warmUp: boolean) => warmUp ? Math.min(settings.batches, Math.max(20, Math.round(settings.batches / 4))) : settings.batches
  const workload = (warmUp: boolean) => distinctRowBatches('orders', count(warmUp), settings.batchSize)

  const waiting = async (queue: string, expected: number) => {
    const found = await ctx.redis.llen(`{${prefix}}:${queue}:wait`)
    if (found !== expected) throw new Error(`${queue} holds ${found} waiting jobs after the run, expected ${expected}`)
  }
  // A scenario whose measured part is `send` over every batch, `in flight` at a time.
  const sending = (name: string, queue: string, send: (batch: Batch) => Promise<void>): Scenario => ({
    name,
    async measure (warmUp) {
      const batches = workload(warmUp)
      const stop = await startClock(ctx.redis)
      await inParallel(batches, settings.inFlight, send)
      const sample = await stop()
      await waiting(queue, batches.length * settings.batchSize)
      return sample
    },
  })

  const scenarios: Scenario[] = [
    sending('BullMQ addBulk (baseline)', BARE_QUEUE, async (batch) => {
      await bare.addBulk(batch.messages.map((message) => bareJob(message, WORKFLOW, 'noop', 0, stepOpts)))
    }),
    // Real sockets; the client (fetch) shares this process's CPU, which Sequin's would not.
    sending('changeflow, HTTP POST (fetch, keep-alive)', WORKFLOW, async (batch) => {
      const response = await fetch(url, { method: 'POST', headers, body: batch.body })
      expectAccepted(response.status, await response.text(), batch)
    }),
    sending('changeflow, app.inject', WORKFLOW, async (batch) => {
      const response = await web.app.inject({ method: 'POST', url: '/webhooks/sequin', headers, payload: batch.body })
      expectAccepted(response.statusCode, response.body, batch)
    }),
    sending('changeflow, ingest() without HTTP', WORKFLOW, async (batch) => {
      const outcome = await ingest(batch.body, quiet)
      expectAccepted(outcome.kind === 'accepted' ? 200 : 500, JSON.stringify(outcome.kind === 'accepted' ? outcome.counts : outcome), batch)
    }),
    {
      // The CPU half of ingest(): body parse, zod, routing, ids and job data; nothing reaches Redis.
      name: '↳ of which JSON.parse + planBatch (CPU)',
      async measure (warmUp) {
        const batches = workload(warmUp)
        const stop = await startClock(ctx.redis)
        let jobs = 0
        for (const batch of batches) {
          jobs += planBatch((JSON.parse(batch.body) as { data: unknown[] }).data, workflows, jobOptions, new Date())
            .changes.reduce((sum, change) => sum + change.jobs.length, 0)
        }
        const sample = await stop()
        if (jobs !== batches.length * settings.batchSize) throw new Error(`planBatch planned ${jobs} jobs, expected one a message`)
        return sample
      },
    },
    {
      // The Redis half: the one script per batch, with plans made before the clock starts.
      name: '↳ of which commitPlan (Lua script)',
      async measure (warmUp) {
        const batches = workload(warmUp)
        const plans: BatchPlan[] = batches.map((batch) => planBatch(batch.messages, workflows, jobOptions, new Date()))
        const stop = await startClock(ctx.redis)
        await inParallel(plans, settings.inFlight, async (plan) => {
          const committed = await commitPlan(web.redis as ScriptedRedis, keys, plan, { dedupTtlMs: config.DEDUP_TTL, quarantineLimit: config.QUARANTINE_LIMIT }, Date.now())
          if (!committed.ok || committed.jobs !== plan.changes.length) throw new Error(`commitPlan added ${committed.ok ? committed.jobs : 0} jobs for ${plan.changes.length} changes`)
        })
        const sample = await stop()
        await waiting(WORKFLOW, batches.length * settings.batchSize)
        return sample
      },
    },
  ]

  const timings = await runRounds('ingest', scenarios, settings.repeats, ctx.clear)
  const baseline = timings[0]!.median
  const messages = settings.batches * settings.batchSize
  const rows = timings.map((timing) => [
    timing.scenario.name,
    rate(messages),
    fixed(timing.median, 3),
    `${fixed(timing.best, 3)}–${fixed(timing.worst, 3)}`,
    rate(messages / timing.median),
    ratio(baseline / timing.median),
    fixed(timing.nodeCpu / messages * 1e6, 0),
    fixed(timing.redisCpu / messages * 1e6, 0),
  ])
  // The full paths, HTTP and inject, are what the project's goal is about; the rest is breakdown.
  const [http, inject] = [timings[1]!, timings[2]!].map((timing) => baseline / timing.median) as [number, number]
  return [
    table(['ingest scenario', 'messages', 'median s', 'min–max s', 'messages/s', 'vs addBulk', 'node CPU µs/msg', 'Redis CPU µs/msg'], rows),
    '',
    `every guarantee on vs bare addBulk: ${ratio(http)} over HTTP, ${ratio(inject)} through inject ` +
      `(project goal: at least 1.00×): ${Math.min(http, inject) >= 1 ? 'met' : 'NOT met'}`,
  ].join('\n')
}
