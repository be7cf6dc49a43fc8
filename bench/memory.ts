import { Queue } from 'bullmq'
import { Metrics } from '../src/metrics.ts'
import { createWeb, createWorker } from '../src/runtime/services.ts'
import { TOKEN, type Context } from './lib/context.ts'
import { withTimeout } from './lib/measure.ts'
import { table } from './lib/table.ts'
import { distinctRowBatches } from './lib/workload.ts'

const WORKFLOW = 'bench-memory'
const KINDS: Array<[string, RegExp]> = [
  ['dedup hashes (`_cf:s:`)', /:_cf:s:/],
  ['late detection (`_cf:v:`)', /:_cf:v:/],
  ['run records (`_cf:run:`)', /:_cf:run:/],
  ['row queues and indexes (`_cf:rowq:`, `_cf:rows`)', /:_cf:row(q:|s$)/],
  ['BullMQ jobs (`<queue>:<id>`)', /:bench-memory:[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/],
  ['BullMQ events stream (capped at 10,000 entries a queue)', /:events$/],
  ['change journal (`_cf:journal`, `_cf:jr:`), kept for JOURNAL_RETENTION', /:_cf:j(ournal$|r:)/],
]

/** `MEMORY USAGE` of every key of this run (exact, every element counted), by kind. */
async function footprint (ctx: Context): Promise<Map<string, { keys: number, bytes: number }>> {
  const sums = new Map<string, { keys: number, bytes: number }>()
  let cursor = '0'
  do {
    const [next, keys] = await ctx.redis.scan(cursor, 'MATCH', `{${ctx.prefix}}*`, 'COUNT', 1000)
    cursor = next
    for (const key of keys) {
      const kind = KINDS.find(([, pattern]) => pattern.test(key))?.[0] ?? 'other (queue meta, ids, markers)'
      const bytes = Number(await ctx.redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'))
      const sum = sums.get(kind) ?? { keys: 0, bytes: 0 }
      sums.set(kind, { keys: sum.keys + 1, bytes: sum.bytes + bytes })
    }
  } while (cursor !== '0')
  return sums
}

/**
 * Part 3: what a change costs in Redis. Changes on rows of their own (the costly case: nothing
 * shared between them) are ingested into a three-step workflow and measured with `MEMORY USAGE`
 * while their first steps wait, then again once every run finished and the completed jobs were
 * trimmed (KEEP_COMPLETED=0): what each change keeps for the dedup horizon (DEDUP_TTL).
 */
export async function benchMemory (ctx: Context): Promise<{ text: string, perChange: number, perQueuedStep: number }> {
  const { settings } = ctx
  await ctx.clear()
  const changes = Math.max(200, Math.round(settings.changes / 100) * 100)
  const metrics = new Metrics({ defaultMetrics: false })
  // Completed jobs trimmed at once: what stays is what a change keeps for the dedup horizon.
  const config = Object.freeze({ ...ctx.config, KEEP_COMPLETED: 0, KEEP_COMPLETED_AGE: 0 })
  const common = { config, logger: ctx.logger, redisUrl: settings.redisUrl, metrics }
  const web = await createWeb({ ...common, workflows: ctx.workflows, tokens: [TOKEN] })
  let worker
  try {
    for (const batch of distinctRowBatches('bench_memory', changes / 100, 100)) {
      const response = await web.app.inject({ method: 'POST', url: '/webhooks/sequin', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, payload: batch.body })
      if (response.statusCode !== 200) throw new Error(`ingest answered ${response.statusCode}: ${response.body}`)
    }
    const queued = await footprint(ctx)
    worker = createWorker({ ...common, workflows: [ctx.workflow(WORKFLOW)] })
    const seen = (kind: Map<string, { keys: number, bytes: number }>) => kind.get(KINDS[0]![0])?.keys ?? 0
    // A run's next step is queued before its current one completes: an empty queue is every run done.
    const queue = new Queue(WORKFLOW, { connection: ctx.redis, prefix: `{${ctx.prefix}}` })
    await withTimeout((async () => {
      for (;;) {
        const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed')
        if (Object.values(counts).every((n) => n === 0)) return
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    })(), settings.timeoutMs, 'every run to finish').finally(() => queue.close())
    await new Promise((resolve) => setTimeout(resolve, 500)) // the last completions trim their jobs
    const finished = await footprint(ctx)
    if (seen(finished) !== changes) throw new Error(`expected ${changes} dedup hashes, found ${seen(finished)}`)

    const kinds = [...new Set([...queued.keys(), ...finished.keys()])]
    const per = (sums: Map<string, { keys: number, bytes: number }>, kind: string) => Math.round((sums.get(kind)?.bytes ?? 0) / changes)
    const total = (sums: Map<string, { keys: number, bytes: number }>, bounded: boolean) =>
      Math.round([...sums.entries()].filter(([kind]) => bounded || !kind.startsWith('BullMQ events')).reduce((sum, [, { bytes }]) => sum + bytes, 0) / changes)
    const perQueuedStep = total(queued, false)
    const perChange = total(finished, false)
    const rows = kinds.map((kind) => [kind, String(per(queued, kind)), String(per(finished, kind))])
    rows.push(['**per change, without the capped events stream**', `**${perQueuedStep}**`, `**${perChange}**`])
    const text = table(['bytes per change (MEMORY USAGE)', 'first step queued', 'run finished (kept for DEDUP_TTL)'], rows) +
      `\n\n${changes} changes on rows of their own, one three-step run each; queued: its first step waiting; finished: ` +
      'every step completed and trimmed (KEEP_COMPLETED=0).'
    return { text, perChange, perQueuedStep }
  } finally {
    await worker?.close()
    await web.close()
    await ctx.clear()
  }
}
