import type { Queue } from 'bullmq'
import type { Config } from '../config.ts'
import { QUARANTINE_QUEUE, type Keyspace, type Layout } from '../keys.ts'
import type { RedisClient } from '../redis/connection.ts'
import { withScripts } from '../redis/scripts.ts'
import { byQueue, discardQueueWork, liveConsumers, consumerOf, queueWork, shardQueue } from '../runs/orphans.ts'
import { blockedRows, discardRun, retryStep, type BlockedRow, type ReconcileOutcome } from '../runs/rows.ts'
import { recordAction } from './audit.ts'
import { dropMessage, quarantinedIds, quarantinedMessages, quarantineQueue, redriveMessage } from './quarantine.ts'
import { formatTable, oneLine } from './table.ts'

export interface CommandContext {
  config: Pick<Config, 'DEDUP_TTL'>
  redis: RedisClient
  layout: Layout
  out: (line: string) => void
  err: (line: string) => void
}

/** An operator error: the command cannot do what was asked; exit code 1 with this message. */
export class OperationError extends Error {
  override name = 'OperationError'
}

/** Runs `use` on the queues and closes them whatever happens (the connection is shared). */
async function withQueues<T> (queues: Queue[], use: (queues: Queue[]) => Promise<T>): Promise<T> {
  // Connection errors also reject the command that hit them, which reports them; without a
  // listener BullMQ would print each one with its stack.
  for (const queue of queues) queue.on('error', () => {})
  try {
    return await use(queues)
  } finally {
    await Promise.all(queues.map((queue) => queue.close()))
  }
}

/**
 * A workflow named on the command line is checked against what Redis holds, not against
 * JOBS_DIR: a workflow renamed or removed in a deploy still has work to retry or discard.
 */
export async function knownWorkflow (ctx: CommandContext, workflow: string): Promise<void> {
  if (workflow === QUARANTINE_QUEUE) throw new OperationError('quarantined messages are redriven with `redrive`, or dropped with the dashboard')
  if (await ctx.redis.sismember(ctx.layout.home.queues(), workflow)) return
  const known = (await ctx.redis.smembers(ctx.layout.home.queues())).filter((name) => name !== QUARANTINE_QUEUE).sort()
  throw new OperationError(`no workflow "${workflow}" has ever had work in this Redis (known: ${known.join(', ') || 'none'})`)
}

/** The queue (of whichever shard holds it) of a job of `workflow`: job ids are unique across shards. */
async function jobQueue<T> (ctx: CommandContext, workflow: string, jobId: string, use: (queue: Queue, keys: Keyspace) => Promise<T>): Promise<T> {
  await knownWorkflow(ctx, workflow)
  for (const keys of ctx.layout.shards) {
    const found = await withQueues([shardQueue(ctx.redis, keys, workflow)], async ([queue]) =>
      (await queue!.getJob(jobId)) ? { value: await use(queue!, keys) } : null)
    if (found) return found.value
  }
  throw new OperationError(`no job ${jobId} in ${workflow}`)
}

/** Which runs a command acts on: one job, every failed run of a workflow, or a row (its table and primary key). */
export interface RunFilter {
  workflow?: string
  table?: string
  key?: string[]
}

/** Blocked rows matching the filter: a table matches with or without its schema. */
export async function findBlocked (ctx: CommandContext, filter: RunFilter): Promise<BlockedRow[]> {
  const rows = (await Promise.all(ctx.layout.shards.map((keys) => blockedRows(ctx.redis, keys)))).flat()
  return rows.filter((row) => (filter.workflow === undefined || row.workflow === filter.workflow) &&
    (filter.table === undefined || row.table === filter.table || row.table.endsWith(`.${filter.table}`)) &&
    (filter.key === undefined || row.key.join(',') === filter.key.join(',')))
}

export async function blocked (ctx: CommandContext, json: boolean, filter: RunFilter = {}): Promise<void> {
  const rows = await findBlocked(ctx, filter)
  if (json) {
    for (const row of rows) ctx.out(JSON.stringify(row))
    return
  }
  if (rows.length === 0) {
    ctx.out('no blocked rows')
    return
  }
  // The error goes last: it is the long column.
  const lines = formatTable(
    ['WORKFLOW', 'STEP', 'TABLE', 'KEY', 'ACTION', 'COMMITTED', 'BLOCKED', 'WHY', 'WAITING', 'JOB', 'ERROR'],
    rows.map((row) => [
      row.workflow, row.step, row.table, row.key.join(','), row.action, row.commitTimestamp ?? '',
      row.failedAt ?? row.since, row.reason, String(row.waiting), row.jobId, oneLine(row.error),
    ]))
  for (const line of lines) ctx.out(line)
}

export async function retry (ctx: CommandContext, workflow: string, jobId: string): Promise<void> {
  const shard = await jobQueue(ctx, workflow, jobId, async (queue, keys) => {
    await retryStep(queue, jobId)
    const row = (await queue.getJob(jobId))?.data?.row
    if (typeof row === 'string') await ctx.redis.zrem(keys.blocked('failed'), row)
    return ctx.layout.shards.indexOf(keys)
  })
  await recordAction(ctx.redis, ctx.layout.home, 'retry', { workflow, jobId })
  const consumed = (await liveConsumers(ctx.redis, ctx.layout)).has(consumerOf(shard, workflow))
  ctx.out(`retried ${workflow} job ${jobId}: its run continues from this step, then its row's next run` +
    (consumed ? '' : ` (no worker runs ${workflow} now: it waits until one does)`))
}

const OUTCOMES: Record<ReconcileOutcome | 'unordered', string> = {
  discarded: "its run left the row; the row's next run, if one waits, has started",
  finished: "its run had finished; the row's next run, if one waits, has started",
  started: "the row's next run has started",
  running: "the row's head run is still running",
  blocked: "the row's head run is failed and waits for an operator",
  empty: 'no runs of its row are left',
  unordered: 'its workflow is not ordered by row: no other run waited on it',
}

export async function discard (ctx: CommandContext, workflow: string, jobId: string): Promise<void> {
  const live = await liveConsumers(ctx.redis, ctx.layout)
  const outcome = await jobQueue(ctx, workflow, jobId, (queue, keys) => {
    const orphaned = !live.has(consumerOf(ctx.layout.shards.indexOf(keys), workflow))
    return discardRun(withScripts(ctx.redis), keys, queue, jobId, ctx.config.DEDUP_TTL, orphaned)
  })
  await recordAction(ctx.redis, ctx.layout.home, 'discard', { workflow, jobId, outcome: outcome ?? 'unordered' })
  ctx.out(`discarded ${workflow} job ${jobId} (${outcome ?? 'unordered'}): ${OUTCOMES[outcome ?? 'unordered']}`)
}

/** Queues holding work, which of them no worker consumes, and how much is waiting there. */
export async function orphans (ctx: CommandContext, json: boolean): Promise<void> {
  const work = (await queueWork(ctx.redis, ctx.layout)).filter((queue) => queue.queue !== QUARANTINE_QUEUE)
  if (json) {
    for (const queue of work) ctx.out(JSON.stringify({ ...queue, orphaned: !queue.consumed }))
    return
  }
  const orphaned = byQueue(work.filter((queue) => !queue.consumed))
  if (orphaned.length === 0) {
    ctx.out('no orphaned work: a worker consumes every queue that holds jobs')
    return
  }
  const sharded = ctx.layout.shards.length > 1
  const lines = formatTable(['QUEUE', ...(sharded ? ['SHARDS'] : []), 'WAITING', 'DELAYED', 'ACTIVE', 'FAILED', 'TOTAL'], orphaned.map((queue) => [
    queue.queue, ...(sharded ? [queue.shards.join(',')] : []), String(queue.counts.waiting + queue.counts.prioritized),
    String(queue.counts.delayed), String(queue.counts.active), String(queue.counts.failed), String(queue.total),
  ]))
  for (const line of lines) ctx.out(line)
  ctx.out('no worker runs these queues: run a worker that defines the workflow to drain one, or give its runs up with discard-workflow <queue>')
}

/** Gives up every run waiting in a workflow's queue (a workflow no worker runs any more). */
export async function discardWorkflow (ctx: CommandContext, workflow: string, force: boolean): Promise<number> {
  await knownWorkflow(ctx, workflow)
  const live = await liveConsumers(ctx.redis, ctx.layout)
  if (ctx.layout.shards.some((_, shard) => live.has(consumerOf(shard, workflow))) && !force) {
    throw new OperationError(`a worker still runs ${workflow}: its work is not orphaned. Stop those workers first, or pass --force`)
  }
  const result = await discardQueueWork(withScripts(ctx.redis), ctx.layout, workflow, ctx.config.DEDUP_TTL)
  await recordAction(ctx.redis, ctx.layout.home, 'discard-workflow', { workflow, discarded: String(result.discarded) })
  for (const error of result.errors) ctx.err(`error: ${error}`)
  ctx.out(`discarded ${result.discarded} runs of ${workflow} from its queue; runs of it parked in rows are given up as their turn comes; their rows moved on`)
  return result.errors.length > 0 ? 1 : 0
}

/**
 * The keyspace's recorded shard count; with `reset`, forgets it so that processes may start with
 * another REDIS_SHARDS, only once no queue of any shard holds work (drained: nothing waiting,
 * running, delayed or failed, the quarantine included).
 */
export async function layout (ctx: CommandContext, reset: boolean): Promise<void> {
  const recorded = await ctx.redis.get(ctx.layout.recordKey())
  if (!reset) {
    ctx.out(recorded === null ? 'no layout recorded yet: the first process to start records its REDIS_SHARDS' : recorded)
    return
  }
  const busy = await queueWork(ctx.redis, ctx.layout)
  if (busy.length > 0) {
    throw new OperationError(`the keyspace still holds work (${byQueue(busy).map((queue) => `${queue.queue}: ${queue.total}`).join(', ')}): ` +
      'stop the web side, let the workers drain every queue, then reset')
  }
  // The old layout's per-keyspace marks go with it: a new layout starts from nothing.
  const marks = ctx.layout.shards.flatMap((keys) => [keys.tripwire(), keys.queues(), keys.consumers(), keys.discardedQueues()])
  await recordAction(ctx.redis, ctx.layout.home, 'layout-reset', { layout: recorded ?? '' })
  await ctx.redis.del(ctx.layout.recordKey())
  for (const key of marks) await ctx.redis.del(key) // one by one: on a cluster they live in different slots
  ctx.out('layout forgotten: start every process with the new REDIS_SHARDS')
}

export async function quarantine (ctx: CommandContext, json: boolean): Promise<void> {
  const messages = await withQueues([quarantineQueue(ctx.redis, ctx.layout.home)], ([queue]) => quarantinedMessages(queue!))
  if (json) {
    for (const message of messages) ctx.out(JSON.stringify(message))
    return
  }
  if (messages.length === 0) {
    ctx.out('no quarantined messages')
    return
  }
  const lines = formatTable(
    ['JOB', 'REASON', 'INDEX', 'RECEIVED', 'ERROR'],
    messages.map((message) => [message.jobId, message.reason, String(message.index), message.receivedAt ?? '', oneLine(message.error)]))
  for (const line of lines) ctx.out(line)
}

const REDRIVEN = 'a worker re-ingests it (validation, routing, dedup); if still invalid it returns to quarantine'

/** One message, or (no id) every quarantined one; exit code 1 if any could not be redriven. */
export function redrive (ctx: CommandContext, jobId: string | undefined): Promise<number> {
  return eachQuarantined(ctx, jobId, 'redriven', REDRIVEN, async (queue, id) => {
    await redriveMessage(queue, id)
    await recordAction(ctx.redis, ctx.layout.home, 'redrive', { jobId: id })
  })
}

/** Removes one quarantined message, or (no id) every one: given up for good. */
export function dropQuarantined (ctx: CommandContext, jobId: string | undefined): Promise<number> {
  return eachQuarantined(ctx, jobId, 'dropped', 'removed from the quarantine for good', async (queue, id) => {
    await dropMessage(queue, id)
    await recordAction(ctx.redis, ctx.layout.home, 'quarantine-drop', { jobId: id })
  })
}

async function eachQuarantined (ctx: CommandContext, jobId: string | undefined, done: string, meaning: string, act: (queue: Queue, id: string) => Promise<void>): Promise<number> {
  return withQueues([quarantineQueue(ctx.redis, ctx.layout.home)], async ([queue]) => {
    if (jobId !== undefined) {
      await act(queue!, jobId)
      ctx.out(`${done} ${jobId}: ${meaning}`)
      return 0
    }
    // A snapshot: a message that fails again while we work is not acted on a second time.
    const ids = await quarantinedIds(queue!)
    if (ids.length === 0) {
      ctx.out('no quarantined messages')
      return 0
    }
    let failed = 0
    for (const id of ids) {
      try {
        await act(queue!, id)
        ctx.out(`${done} ${id}`)
      } catch (error) {
        // Someone else redrove or removed it meanwhile: report it, carry on with the rest.
        failed++
        ctx.err(`error: ${(error as Error).message}`)
      }
    }
    ctx.out(`${ids.length - failed} of ${ids.length} quarantined messages ${done}: ${meaning}`)
    return failed > 0 ? 1 : 0
  })
}
