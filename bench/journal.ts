import { commitPlan, type CommitLimits } from '../src/ingest/commit.ts'
import { createJobOptions } from '../src/ingest/job-options.ts'
import { planBatch, type BatchPlan } from '../src/ingest/plan.ts'
import { journalBounds } from '../src/journal/journal.ts'
import { Keyspace } from '../src/keys.ts'
import { Metrics } from '../src/metrics.ts'
import type { ScriptedRedis } from '../src/redis/scripts.ts'
import type { Context } from './lib/context.ts'
import { inParallel, startClock } from './lib/measure.ts'
import { runRounds, type Scenario } from './lib/rounds.ts'
import { fixed, rate, table } from './lib/table.ts'
import { distinctRowBatches } from './lib/workload.ts'

/** `MEMORY USAGE` (exact) of every key matching `pattern`. */
async function bytesOf (ctx: Context, pattern: string): Promise<{ keys: number, bytes: number }> {
  let cursor = '0'
  let keys = 0
  let bytes = 0
  do {
    const [next, found] = await ctx.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = next
    for (const key of found) {
      keys++
      bytes += Number(await ctx.redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'))
    }
  } while (cursor !== '0')
  return { keys, bytes }
}

const usedMemory = async (ctx: Context) => Number(/^used_memory:(\d+)/m.exec(await ctx.redis.info('memory'))?.[1])

/**
 * Part "journal": what the change journal costs. The ingest script alone (plans made before the
 * clock starts), journal off and on in turns: Redis CPU per change; then the journal's bytes per
 * change by `MEMORY USAGE` of its stream and row indexes, and by INFO used_memory's growth.
 */
export async function benchJournal (ctx: Context): Promise<string> {
  const { settings, config, prefix, workflows } = ctx
  const web = await ctx.web(new Metrics({ defaultMetrics: false }))
  const redis = web.redis as ScriptedRedis
  const keys = new Keyspace(prefix)
  const jobOptions = createJobOptions(workflows, config)
  const bounds = journalBounds({ ...config, JOURNAL_RETENTION: config.JOURNAL_RETENTION || 7 * 86_400_000 })!
  const count = (warmUp: boolean) => warmUp ? Math.max(20, Math.round(settings.batches / 4)) : settings.batches
  const commit = (journal: boolean): Scenario => ({
    name: `ingest script, journal ${journal ? 'on' : 'off'}`,
    async measure (warmUp) {
      const batches = distinctRowBatches('orders', count(warmUp), settings.batchSize)
      const plans: BatchPlan[] = batches.map((batch) => planBatch(batch.messages, workflows, jobOptions, new Date(), { journal }))
      const limits: CommitLimits = { dedupTtlMs: config.DEDUP_TTL, quarantineLimit: config.QUARANTINE_LIMIT, journal: journal ? bounds : undefined }
      const stop = await startClock(ctx.redis)
      await inParallel(plans, settings.inFlight, async (plan) => {
        const committed = await commitPlan(redis, keys, plan, limits, Date.now())
        if (!committed.ok || committed.jobs !== plan.changes.length) throw new Error('the ingest script did not accept every change')
      })
      const sample = await stop()
      const journalled = await ctx.redis.xlen(keys.journal())
      if (journalled !== (journal ? plans.length * settings.batchSize : 0)) throw new Error(`the journal holds ${journalled} entries`)
      return sample
    },
  })
  try {
    const timings = await runRounds('journal', [commit(false), commit(true)], settings.repeats, ctx.clear)
    const [off, on] = [timings[0]!, timings[1]!]
    const changes = settings.batches * settings.batchSize
    const perChange = (seconds: number) => seconds / changes * 1e6

    // Memory: one more journal-on run, measured before the keys go.
    const batches = distinctRowBatches('orders', settings.batches, settings.batchSize)
    const messageBytes = batches.reduce((sum, batch) => sum + batch.messages.reduce((s, m) => s + Buffer.byteLength(JSON.stringify(m)), 0), 0) / changes
    const before = await usedMemory(ctx)
    for (const batch of batches) {
      const plan = planBatch(batch.messages, workflows, jobOptions, new Date(), { journal: false })
      await commitPlan(redis, keys, plan, { dedupTtlMs: config.DEDUP_TTL, quarantineLimit: config.QUARANTINE_LIMIT }, Date.now())
    }
    const withoutJournal = await usedMemory(ctx) - before
    await ctx.clear()
    const start = await usedMemory(ctx)
    for (const batch of batches) {
      const plan = planBatch(batch.messages, workflows, jobOptions, new Date(), { journal: true })
      await commitPlan(redis, keys, plan, { dedupTtlMs: config.DEDUP_TTL, quarantineLimit: config.QUARANTINE_LIMIT, journal: bounds }, Date.now())
    }
    const withJournal = await usedMemory(ctx) - start
    const stream = await bytesOf(ctx, keys.journal())
    const index = await bytesOf(ctx, `${keys.own}:jr:*`)
    await ctx.clear()

    const gib = (bytes: number) => `${((bytes * 1e6) / 1024 ** 3).toFixed(2)} GiB`
    const rows = timings.map((timing) => [timing.scenario.name, rate(changes / timing.median), fixed(perChange(timing.redisCpu), 1), fixed(perChange(timing.nodeCpu), 1)])
    const memory = [
      ['stream entries (`_cf:journal`), MEMORY USAGE', fixed(stream.bytes / changes, 0), gib(stream.bytes / changes)],
      ['row indexes (`_cf:jr:<row>`), MEMORY USAGE', fixed(index.bytes / changes, 0), gib(index.bytes / changes)],
      ['journal in all, INFO used_memory on − off', fixed((withJournal - withoutJournal) / changes, 0), gib((withJournal - withoutJournal) / changes)],
    ]
    return [
      table(['journal: ingest script only, plans made before the clock', 'changes/s', 'Redis CPU µs/change', 'node CPU µs/change'], rows),
      '',
      // µs per change is also Redis CPU seconds per million changes.
      `Extra Redis CPU per change with the journal on: ${fixed(perChange(on.redisCpu - off.redisCpu), 1)} µs ` +
        `(${fixed(((on.redisCpu / off.redisCpu) - 1) * 100, 0)} %): ${fixed(perChange(on.redisCpu - off.redisCpu), 1)} s of Redis CPU per million changes.`,
      '',
      table(['journal memory, changes on rows of their own', 'bytes per change', 'per million changes'], memory),
      '',
      `${changes} changes of ${fixed(messageBytes, 0)} bytes of JSON each (the message as job data holds it); ` +
        `${stream.keys + index.keys} keys; the stream's MEMORY USAGE counts every node.`,
    ].join('\n')
  } finally {
    await web.close()
    await ctx.clear()
  }
}
