import { readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { openContext, type Context } from './lib/context.ts'
import { BenchError, readSettings, type Part, type Settings } from './lib/settings.ts'
import { interruption, secondsSince } from './lib/measure.ts'
import { table } from './lib/table.ts'
import { benchHttp } from './http.ts'
import { measureRedisLimit } from './redis-limit.ts'
import { limitText, summary, type Results } from './summary.ts'
import { benchIngest } from './ingest.ts'
import { benchJournal } from './journal.ts'
import { benchMemory } from './memory.ts'
import { benchScale } from './scale.ts'
import { benchSteps } from './steps.ts'

// `npm run bench`: prints Markdown tables on stdout, progress on stderr. See bench/lib/settings.ts.

function version (pkg: string): string {
  try {
    const url = new URL(`../node_modules/${pkg}/package.json`, import.meta.url)
    return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

const loadAverage = () => os.loadavg().slice(0, 2).map((load) => load.toFixed(2)).join(', ')

async function environment (ctx: Context, settings: Settings): Promise<string> {
  const info = await ctx.redis.info()
  const field = (name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim() ?? 'unknown'
  const cpus = os.cpus()
  return table(['setting', 'value'], [
    ['node', process.version],
    ['CPUs', `${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown'}`],
    // Other processes on the machine skew every figure: a load near the CPU count means a busy box.
    ['load average (1, 5 min)', loadAverage()],
    ['Redis', `${field('redis_version')} at ${settings.redisUrl} (aof ${field('aof_enabled') === '1' ? 'on' : 'off'}, ${field('maxmemory_policy')})`],
    ['bullmq / ioredis / fastify', `${version('bullmq')} / ${version('ioredis')} / ${version('fastify')}`],
    ['key prefix', `{${ctx.prefix}} (deleted at the end)`],
    ['ingest workload', `${settings.batches} batches × ${settings.batchSize} messages, ${settings.inFlight} in flight`],
    ['steps workload', `${settings.changes} changes × 2 no-op steps, ${Math.round(settings.sharedRows * 100)}% on an already-used row, WORKER_CONCURRENCY ${settings.workerConcurrency}`],
    ['runs', `1 quarter-size warm-up + ${settings.repeats} measured per scenario, in turns; median reported`],
    ['changeflow log level', settings.logLevel === 'silent' ? 'silent' : `${settings.logLevel} (to /dev/null)`],
  ])
}

async function main (): Promise<number> {
  let settings: Settings
  try {
    settings = readSettings(process.env)
  } catch (error) {
    if (!(error instanceof BenchError)) throw error
    process.stderr.write(`bench: ${error.message}\n`)
    return 1
  }
  const started = process.hrtime.bigint()
  const ctx = await openContext(settings)
  const results: Results = { node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown', loadAverageAtStart: os.loadavg().slice(0, 2) }
  // Ctrl-C: the running scenario stops, and the keys are deleted as after a failure. A second
  // Ctrl-C exits at once (the keys stay: delete {prefix}* by hand).
  const interrupt = (signal: NodeJS.Signals) => {
    if (interruption.signal.aborted) process.exit(130)
    process.stderr.write(`bench: ${signal}: stopping, then deleting {${ctx.prefix}}*\n`)
    interruption.abort()
  }
  process.on('SIGINT', interrupt).on('SIGTERM', interrupt)
  try {
    try {
      await ctx.redis.ping()
    } catch (error) {
      throw new BenchError(`no Redis answers at ${settings.redisUrl} (${(error as Error).message}): start one or set REDIS_URL`)
    }
    process.stdout.write(`## Environment\n\n${await environment(ctx, settings)}\n\n`)
    const seconds: Record<string, number> = {}
    results.partSeconds = seconds
    /** Runs a part if asked for, and notes how long it took (the whole run should stay within 5 minutes on 2 cores). */
    const part = async (name: Part, what: string, run: () => Promise<void>) => {
      if (!settings.parts.has(name)) return
      process.stderr.write(`part ${name}: ${what}\n`)
      const partStarted = process.hrtime.bigint()
      await run()
      seconds[name] = Math.round(secondsSince(partStarted))
      process.stderr.write(`part ${name} done in ${seconds[name]} s\n`)
    }
    await part('http', 'ingest over HTTP (private redis-server; receivers and load generator in processes of their own)', async () => {
      const http = await benchHttp(settings.repeats)
      results.http = { runs: http.runs, profiles: http.profiles }
      process.stdout.write(`## Ingest over HTTP: changeflow against the receiver a user would write\n\n${http.text}\n\n`)
      process.stderr.write('  Redis\'s own limit (redis-benchmark calling the ingest script)\n')
      results.redisLimit = await measureRedisLimit()
      process.stdout.write(`## Redis's own limit\n\n${limitText(results.redisLimit, http.runs)}\n\n`)
    })
    await part('ingest', 'ingest', async () => {
      process.stdout.write(`## Ingest: Sequin batches to queued jobs\n\n${await benchIngest(ctx)}\n\n`)
    })
    await part('steps', 'steps', async () => {
      const steps = await benchSteps(ctx)
      results.steps = steps.figures
      process.stdout.write(`## Steps: queued changes to completed steps\n\n${steps.text}\n\n`)
    })
    await part('memory', 'memory', async () => {
      const memory = await benchMemory(ctx)
      const perMillion = (bytes: number, days: number) => `${((bytes * 1_000_000 * days) / 1024 ** 3).toFixed(2)} GiB`
      process.stdout.write(`## Memory: what a change keeps in Redis\n\n${memory.text}\n\n` +
        `Sizing: 1 million changes a day kept for the default DEDUP_TTL of 7 days need about ${perMillion(memory.perChange, 7)}; ` +
        `1 million steps queued at once about ${perMillion(memory.perQueuedStep, 1)}.\n\n`)
    })
    await part('journal', 'change journal', async () => {
      process.stdout.write(`## Change journal: what keeping every change costs\n\n${await benchJournal(ctx)}\n\n`)
    })
    await part('scale', 'scale (private redis-servers: one, then a three-master cluster)', async () => {
      process.stdout.write(`## Scale: worker processes, one Redis or a cluster\n\n${await benchScale(ctx)}\n\n`)
    })
    process.stdout.write(`## Against the targets\n\n${summary(results)}\n\n`)
    process.stdout.write(`Load average (1, 5 min) at the end: ${loadAverage()}\n`)
    results.loadAverageAtEnd = os.loadavg().slice(0, 2)
    writeFileSync(settings.jsonPath, `${JSON.stringify(results, null, 2)}\n`)
    process.stderr.write(`figures written to ${settings.jsonPath}\n`)
    process.stderr.write(`done in ${secondsSince(started).toFixed(1)} s\n`)
    return 0
  } catch (error) {
    const known = error instanceof BenchError
    process.stderr.write(`bench failed: ${error instanceof Error ? (known ? error.message : error.stack ?? error.message) : String(error)}\n`)
    return interruption.signal.aborted ? 130 : 1
  } finally {
    await ctx.close().catch((error: Error) => process.stderr.write(`bench: could not delete keys {${ctx.prefix}}*: ${error.message}\n`))
  }
}

const code = await main()
if (code !== 0) process.exit(code) // something may still hold the loop open: the failure is reported
process.exitCode = 0
// Everything was closed, so the process ends by itself; if not, say so rather than hang.
setTimeout(() => {
  process.stderr.write('bench: a handle was left open after closing everything; exiting anyway\n')
  process.exit(1)
}, 10_000).unref()
