import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Queue, Worker, type Job } from 'bullmq'
import { Redis } from 'ioredis'
import type { Counts } from '../src/ingest/ingest.ts'
import { createJobOptions } from '../src/ingest/job-options.ts'
import { changeId, stepJobId } from '../src/ingest/identity.ts'
import type { StepJobData } from '../src/ingest/plan.ts'
import { Metrics } from '../src/metrics.ts'
import type { SequinMetadata } from '../src/sequin/message.ts'
import { bareJob, type BareJob } from './lib/bare.ts'
import { hotRows } from './lib/hot-rows.ts'
import { startProfiler, summariseProfile, type ProfileShare } from './lib/profile.ts'
import { TOKEN, type Context } from './lib/context.ts'
import { chunks, inParallel, startClock, withTimeout } from './lib/measure.ts'
import { runRounds, type Scenario } from './lib/rounds.ts'
import { fixed, rate, ratio, table } from './lib/table.ts'
import { mostlyDistinctRows, seeded, toBatches, type Message } from './lib/workload.ts'

const BARE_QUEUE = 'bench-bare-steps'

/** Resolves when `target` jobs completed across `workers`; rejects on the first failure. */
function completions (workers: readonly Worker[], target: number): { done: Promise<void>, count: () => number } {
  let count = 0
  const done = new Promise<void>((resolve, reject) => {
    for (const worker of workers) {
      worker.on('completed', () => { if (++count === target) resolve() })
      worker.on('failed', (job: Job | undefined, error: Error) => reject(new Error(`${worker.name} job ${job?.id} failed: ${error.message}`)))
    }
  })
  return { done, count: () => count }
}

/**
 * Part 2: steps per second once changes are in Redis: changeflow's workers (a script per step
 * that records the result and releases the next step, or the row's next run) with per-row
 * ordering on and off, against bare BullMQ workers running the same number of no-op jobs.
 */
export interface StepFigures {
  /** Steps per second of each scenario (medians). */
  independent: number
  chained: number
  off: number
  on: number
  hotOff: number
  hotOn: number
}

const ORDERED = 'changeflow, ordering on (default)'
const HOT_OFF = 'changeflow, hot rows, ordering off'
const HOT_ON = 'changeflow, hot rows, ordering on'

function quantile (values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}

export async function benchSteps (ctx: Context): Promise<{ text: string, figures: StepFigures }> {
  const { settings, config, prefix, workflows } = ctx
  const metrics = new Metrics()
  const web = await ctx.web(metrics)
  const jobOptions = createJobOptions(workflows, config)
  const opts = (step: string) => JSON.parse(jobOptions.step('bench-ordered', step)) as Record<string, unknown>
  const workerOptions = {
    prefix: `{${prefix}}`,
    concurrency: settings.workerConcurrency,
    lockDuration: config.LOCK_DURATION,
    maxStalledCount: config.MAX_STALLED_COUNT,
    stalledInterval: config.STALLED_INTERVAL,
  }
  const count = (warmUp: boolean) => warmUp ? Math.min(settings.changes, Math.max(200, Math.round(settings.changes / 4))) : settings.changes
  // Every measurement gets the same pattern of shared rows (on rows of its own).
  const workload = (table: string, warmUp: boolean) => mostlyDistinctRows(table, count(warmUp), settings.sharedRows, seeded(42))

  /** A bare BullMQ worker with changeflow's worker settings, over jobs added before the clock starts. */
  const bare = (name: string, firstJobs: (message: Message) => BareJob[], chained: boolean): Scenario => ({
    name,
    async measure (warmUp) {
      const messages = workload('bench_bare', warmUp)
      const jobs = messages.flatMap(firstJobs)
      const producer = new Queue(BARE_QUEUE, { connection: ctx.redis, prefix: `{${prefix}}` })
      await inParallel(chunks(jobs, settings.batchSize), settings.inFlight, async (batch) => { await producer.addBulk(batch) })
      await producer.close()

      const stop = await startClock(ctx.redis)
      const connection = new Redis(settings.redisUrl, { maxRetriesPerRequest: null })
      const next = new Queue(BARE_QUEUE, { connection, prefix: `{${prefix}}` })
      const worker = new Worker<StepJobData>(BARE_QUEUE, async (job) => {
        // Chained: step two enqueued by step one, as changeflow does (there, inside a script).
        if (chained && job.name === 'one') {
          await next.add('two', { ...job.data, step: 'two', stepIndex: 1 }, { ...opts('two'), jobId: stepJobId(job.data.run, 'two') })
        }
        return null
      }, { ...workerOptions, connection })
      worker.on('error', () => {})
      const counted = completions([worker], messages.length * 2)
      let sample
      try {
        await withTimeout(counted.done, settings.timeoutMs, name)
        sample = await stop()
      } finally {
        await worker.close()
        await next.close()
        connection.disconnect()
      }
      if (counted.count() !== messages.length * 2) throw new Error(`${name}: ${counted.count()} jobs completed, expected ${messages.length * 2}`)
      return sample
    },
  })

  /** Per measured hot-row scenario: how long after the workers started each change's run finished. */
  const lags = new Map<string, { hot: number[], cold: number[] }>()

  /** Set for one more run of a scenario, after the measured ones: where its CPU went (`--cpu-prof`'s format). */
  let profileTo: string | undefined

  const changeflow = (name: string, workflow: string, table: string, hotRowMix = false): Scenario => ({
    name,
    async measure (warmUp) {
      // Accepted with no worker running: every step is then waiting, as for bare BullMQ.
      const mix = hotRowMix ? hotRows(table, count(warmUp), seeded(7)) : { messages: workload(table, warmUp), hot: new Set<number>() }
      const messages = mix.messages
      const hotChanges = new Set([...mix.hot].map((i) => changeId(messages[i]!.metadata as SequinMetadata)))
      await inParallel(toBatches(messages, settings.batchSize), settings.inFlight, async (batch) => {
        const response = await web.app.inject({
          method: 'POST',
          url: '/webhooks/sequin',
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
          payload: batch.body,
        })
        if (response.statusCode !== 200 || (JSON.parse(response.body) as Counts).accepted !== batch.messages.length) {
          throw new Error(`changeflow answered ${response.statusCode} ${response.body.slice(0, 300)} while pre-loading ${name}`)
        }
      })

      const target = messages.length * 2
      const profiler = profileTo === undefined ? undefined : await startProfiler()
      const stop = await startClock(ctx.redis)
      const started = performance.now()
      const worker = ctx.worker([ctx.workflow(workflow)], metrics)
      const counted = completions(worker.workers.workers, target)
      const lag = { hot: [] as number[], cold: [] as number[] }
      if (hotRowMix && !warmUp) {
        lags.set(name, lag)
        for (const w of worker.workers.workers) {
          w.on('completed', (job: Job<StepJobData>) => {
            if (job.data.stepIndex === 1) (hotChanges.has(job.data.changeId) ? lag.hot : lag.cold).push((performance.now() - started) / 1000)
          })
        }
      }
      let sample
      try {
        await withTimeout(counted.done, settings.timeoutMs, name)
        sample = await stop()
        if (profiler && profileTo !== undefined) await profiler.stop(profileTo)
      } finally {
        await worker.close()
      }
      // Exactly once, and in the end no row is left holding a run.
      if (counted.count() !== target) throw new Error(`${name}: ${counted.count()} steps completed, expected ${target}`)
      // The rows index holds only rows with a run waiting; a row queue left at all is a stuck run.
      const rows = (await ctx.redis.keys(`{${prefix}}:_cf:rowq:*`)).length
      if (rows !== 0) throw new Error(`${name}: ${rows} rows still have runs after every step completed`)
      return sample
    },
  })

  const scenarios: Scenario[] = [
    bare('BullMQ Worker, 2×M independent jobs (baseline)', (message) => [
      bareJob(message, 'bench-ordered', 'one', 0, opts('one')),
      bareJob(message, 'bench-ordered', 'two', 1, opts('two')),
    ], false),
    bare('BullMQ Worker, step two added by step one', (message) => [bareJob(message, 'bench-ordered', 'one', 0, opts('one'))], true),
    changeflow('changeflow, ordering off', 'bench-unordered', 'bench_unordered'),
    changeflow(ORDERED, 'bench-ordered', 'bench_ordered'),
    changeflow(HOT_OFF, 'bench-unordered', 'bench_unordered', true),
    changeflow(HOT_ON, 'bench-ordered', 'bench_ordered', true),
  ]

  try {
    const timings = await runRounds('steps', scenarios, settings.repeats, ctx.clear)
    // One more run of the default (ordering on), profiled: the workers run in this process.
    const dir = mkdtempSync(join(tmpdir(), 'changeflow-profile-'))
    let profile: ProfileShare[]
    try {
      profileTo = join(dir, 'CPU.steps.0.1.cpuprofile')
      await scenarios.find((scenario) => scenario.name === ORDERED)!.measure(false)
      await ctx.clear()
      profile = summariseProfile(dir, 6).shares
    } finally {
      profileTo = undefined
      rmSync(dir, { recursive: true, force: true })
    }
    const steps = settings.changes * 2
    const [independent, chained, off, on, hotOff, hotOn] = timings.map((timing) => steps / timing.median) as [number, number, number, number, number, number]
    const rows = timings.map((timing) => [
      timing.scenario.name,
      rate(steps),
      fixed(timing.median, 3),
      `${fixed(timing.best, 3)}–${fixed(timing.worst, 3)}`,
      rate(steps / timing.median),
      ratio(steps / timing.median / independent),
      ratio(steps / timing.median / chained),
      fixed(timing.nodeCpu / steps * 1e6, 0),
      fixed(timing.redisCpu / steps * 1e6, 0),
    ])
    const cost = 1 - on / off
    const lagRows = [HOT_OFF, HOT_ON].map((name) => {
      const lag = lags.get(name) ?? { hot: [], cold: [] }
      const at = (values: number[], q: number) => values.length === 0 ? '-' : fixed(quantile(values, q), 2)
      return [name, at(lag.cold, 0.5), at(lag.cold, 0.99), at(lag.hot, 0.5), at(lag.hot, 0.99), at(lag.hot, 1)]
    })
    const text = [
      table(['steps scenario', 'steps', 'median s', 'min–max s', 'steps/s', 'vs BullMQ', 'vs BullMQ chained', 'node CPU µs/step', 'Redis CPU µs/step'], rows),
      '',
      `ordering on / off: ${ratio(on / off)} of the throughput, a cost of ${fixed(cost * 100, 1)}% (project target: at most 30%): ${cost <= 0.3 ? 'met' : 'NOT met'}`,
      '',
      'Hot rows (a fifth of the changes on 1 % of the rows): when each change\'s run finished, in seconds after the workers started (last measured round):',
      '',
      table(['hot-row scenario', 'other rows p50 s', 'other rows p99 s', 'hot rows p50 s', 'hot rows p99 s', 'hot rows last s'], lagRows),
      '',
      'Where this process (changeflow\'s workers, ordering on, one more run) spent its CPU (V8 profiler, self time, idle excluded; `node` is Node\'s own code, mostly socket writes): ' +
        profile.map((share) => `${share.where} ${Math.round(share.share * 100)}%`).join(', '),
    ].join('\n')
    return { text, figures: { independent, chained, off, on, hotOff, hotOn } }
  } finally {
    await web.close()
  }
}
