import type { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Config } from '../config.ts'
import { QUARANTINE_QUEUE, type Keyspace } from '../keys.ts'
import { withScripts } from '../redis/scripts.ts'
import { discardQueueWork, liveConsumers, queueWork } from '../runs/orphans.ts'
import { blockedRows, discardRun, retryStep, workflowQueues, type ReconcileOutcome } from '../runs/rows.ts'
import { quarantinedIds, quarantinedMessages, quarantineQueue, redriveMessage } from './quarantine.ts'
import { formatTable, oneLine } from './table.ts'

export interface CommandContext {
  config: Pick<Config, 'DEDUP_TTL'>
  redis: Redis
  keys: Keyspace
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
 * The queue of one workflow named on the command line. Checked against what Redis holds, not
 * against JOBS_DIR: a workflow renamed or removed in a deploy still has work to retry or discard.
 */
async function workflowQueue<T> (ctx: CommandContext, workflow: string, use: (queue: Queue) => Promise<T>): Promise<T> {
  if (workflow === QUARANTINE_QUEUE) throw new OperationError('quarantined messages are redriven with `redrive`, or dropped with the dashboard')
  if (!await ctx.redis.sismember(ctx.keys.queues(), workflow)) {
    const known = (await ctx.redis.smembers(ctx.keys.queues())).filter((name) => name !== QUARANTINE_QUEUE).sort()
    throw new OperationError(`no workflow "${workflow}" has ever had work in this Redis (known: ${known.join(', ') || 'none'})`)
  }
  return withQueues(workflowQueues([workflow], ctx.redis, ctx.keys), ([queue]) => use(queue!))
}

export async function blocked (ctx: CommandContext, json: boolean): Promise<void> {
  const rows = await blockedRows(ctx.redis, ctx.keys)
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
  await workflowQueue(ctx, workflow, async (queue) => {
    await retryStep(queue, jobId)
    await ctx.redis.zrem(ctx.keys.blocked('failed'), ...await rowOf(queue, jobId))
  })
  const consumed = (await liveConsumers(ctx.redis, ctx.keys)).has(workflow)
  ctx.out(`retried ${workflow} job ${jobId}: its run continues from this step, then its row's next run` +
    (consumed ? '' : ` (no worker runs ${workflow} now: it waits until one does)`))
}

async function rowOf (queue: Queue, jobId: string): Promise<string[]> {
  const row = (await queue.getJob(jobId))?.data?.row
  return typeof row === 'string' ? [row] : []
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
  const orphaned = !(await liveConsumers(ctx.redis, ctx.keys)).has(workflow)
  const outcome = await workflowQueue(ctx, workflow, (queue) => discardRun(withScripts(ctx.redis), ctx.keys, queue, jobId, ctx.config.DEDUP_TTL, orphaned))
  ctx.out(`discarded ${workflow} job ${jobId} (${outcome ?? 'unordered'}): ${OUTCOMES[outcome ?? 'unordered']}`)
}

/** Queues holding work, which of them no worker consumes, and how much is waiting there. */
export async function orphans (ctx: CommandContext, json: boolean): Promise<void> {
  const work = (await queueWork(ctx.redis, ctx.keys)).filter((queue) => queue.queue !== QUARANTINE_QUEUE)
  const orphaned = work.filter((queue) => !queue.consumed)
  if (json) {
    for (const queue of work) ctx.out(JSON.stringify({ ...queue, orphaned: !queue.consumed }))
    return
  }
  if (orphaned.length === 0) {
    ctx.out('no orphaned work: a worker consumes every queue that holds jobs')
    return
  }
  const lines = formatTable(['QUEUE', 'WAITING', 'DELAYED', 'ACTIVE', 'FAILED', 'TOTAL'], orphaned.map((queue) => [
    queue.queue, String(queue.counts.waiting + queue.counts.prioritized), String(queue.counts.delayed),
    String(queue.counts.active), String(queue.counts.failed), String(queue.total),
  ]))
  for (const line of lines) ctx.out(line)
  ctx.out('no worker runs these queues: run a worker that defines the workflow to drain one, or give its runs up with discard-workflow <queue>')
}

/** Gives up every run waiting in a workflow's queue (a workflow no worker runs any more). */
export async function discardWorkflow (ctx: CommandContext, workflow: string, force: boolean): Promise<number> {
  if ((await liveConsumers(ctx.redis, ctx.keys)).has(workflow) && !force) {
    throw new OperationError(`a worker still runs ${workflow}: its work is not orphaned. Stop those workers first, or pass --force`)
  }
  const result = await workflowQueue(ctx, workflow, () => discardQueueWork(withScripts(ctx.redis), ctx.keys, workflow, ctx.config.DEDUP_TTL))
  for (const error of result.errors) ctx.err(`error: ${error}`)
  ctx.out(`discarded ${result.discarded} runs of ${workflow} from its queue; runs of it parked in rows are given up as their turn comes; their rows moved on`)
  return result.errors.length > 0 ? 1 : 0
}

export async function quarantine (ctx: CommandContext, json: boolean): Promise<void> {
  const messages = await withQueues([quarantineQueue(ctx.redis, ctx.keys)], ([queue]) => quarantinedMessages(queue!))
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
export async function redrive (ctx: CommandContext, jobId: string | undefined): Promise<number> {
  return withQueues([quarantineQueue(ctx.redis, ctx.keys)], async ([queue]) => {
    if (jobId !== undefined) {
      await redriveMessage(queue!, jobId)
      ctx.out(`redriven ${jobId}: ${REDRIVEN}`)
      return 0
    }
    // A snapshot: a message that fails again while we work is not redriven a second time.
    const ids = await quarantinedIds(queue!)
    if (ids.length === 0) {
      ctx.out('no quarantined messages')
      return 0
    }
    let failed = 0
    for (const id of ids) {
      try {
        await redriveMessage(queue!, id)
        ctx.out(`redriven ${id}`)
      } catch (error) {
        // Someone else redrove or removed it meanwhile: report it, carry on with the rest.
        failed++
        ctx.err(`error: ${(error as Error).message}`)
      }
    }
    ctx.out(`${ids.length - failed} of ${ids.length} quarantined messages redriven: ${REDRIVEN}`)
    return failed > 0 ? 1 : 0
  })
}
