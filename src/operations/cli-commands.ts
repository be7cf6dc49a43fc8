import type { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Config } from '../config.ts'
import type { Keyspace } from '../keys.ts'
import { withScripts } from '../redis/scripts.ts'
import { loadWorkflows } from '../workflows/load.ts'
import { quarantinedIds, quarantinedMessages, quarantineQueue, redriveMessage } from './quarantine.ts'
import { blockedRows, discardRun, retryStep, workflowQueues, type ReconcileOutcome } from './rows.ts'
import { formatTable, oneLine } from './table.ts'

export interface CommandContext {
  config: Pick<Config, 'JOBS_DIR' | 'DEDUP_TTL'>
  redis: Redis
  keys: Keyspace
  out: (line: string) => void
  err: (line: string) => void
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

async function workflowNames (ctx: CommandContext): Promise<string[]> {
  return (await loadWorkflows(ctx.config.JOBS_DIR)).map((workflow) => workflow.name)
}

/** The queue of one workflow named on the command line; its name is checked against JOBS_DIR. */
async function workflowQueue<T> (ctx: CommandContext, workflow: string, use: (queue: Queue) => Promise<T>): Promise<T> {
  const names = await workflowNames(ctx)
  if (!names.includes(workflow)) {
    const hint = workflow === 'quarantine' ? '; quarantined messages are redriven with `redrive`' : ''
    throw new Error(`no workflow "${workflow}" in ${ctx.config.JOBS_DIR} (known: ${names.join(', ') || 'none'})${hint}`)
  }
  return withQueues(workflowQueues([workflow], ctx.redis, ctx.keys), ([queue]) => use(queue!))
}

export async function blocked (ctx: CommandContext, json: boolean): Promise<void> {
  const names = await workflowNames(ctx)
  const rows = await withQueues(workflowQueues(names, ctx.redis, ctx.keys), (queues) => blockedRows(ctx.redis, ctx.keys, queues))
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
    ['WORKFLOW', 'STEP', 'TABLE', 'KEY', 'ACTION', 'COMMITTED', 'FAILED', 'WAITING', 'JOB', 'ERROR'],
    rows.map((row) => [
      row.workflow, row.step, row.table, row.key.join(','), row.action, row.commitTimestamp ?? '',
      row.failedAt ?? '', String(row.waiting), row.jobId, oneLine(row.error),
    ]))
  for (const line of lines) ctx.out(line)
}

export async function retry (ctx: CommandContext, workflow: string, jobId: string): Promise<void> {
  await workflowQueue(ctx, workflow, async (queue) => {
    const job = await queue.getJob(jobId)
    if (!job) throw new Error(`no job ${jobId} in ${workflow}`)
    const state = await job.getState()
    // Checked first for a clear message; BullMQ's retry refuses a job that is not failed anyway.
    if (state !== 'failed') throw new Error(`job ${jobId} in ${workflow} is ${state}: only a failed step can be retried`)
    await retryStep(queue, jobId)
  })
  ctx.out(`retried ${workflow} job ${jobId}: its run continues from this step, then its row's next run`)
}

const OUTCOMES: Record<ReconcileOutcome | 'unordered', string> = {
  discarded: "its run left the row; the row's next run, if one waits, has started",
  started: "the row's next run has started",
  running: "the row's head run is still running",
  empty: 'no runs of its row are left',
  unordered: 'its workflow is not ordered by row: no other run waited on it',
}

export async function discard (ctx: CommandContext, workflow: string, jobId: string): Promise<void> {
  const outcome = await workflowQueue(ctx, workflow, (queue) => discardRun(withScripts(ctx.redis), ctx.keys, queue, jobId, ctx.config.DEDUP_TTL))
  ctx.out(`discarded ${workflow} job ${jobId} (${outcome ?? 'unordered'}): ${OUTCOMES[outcome ?? 'unordered']}`)
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
