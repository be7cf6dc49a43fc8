import { consumerOf, liveConsumers, shardQueue } from '../runs/orphans.ts'
import { discard, findBlocked, knownWorkflow, OperationError, retry, type CommandContext, type RunFilter } from './cli-commands.ts'

/** Which runs `retry` and `discard` act on: one job, every failed run of a workflow, or a blocked row. */
export type RunTarget =
  | { kind: 'job', workflow: string, jobId: string }
  | { kind: 'workflow', workflow: string }
  | { kind: 'row', filter: RunFilter & { table: string, key: string[] } }

interface RunRef { workflow: string, jobId: string }

/**
 * The runs a target names. A workflow's: its failed jobs in every shard, and (for discard) the
 * runs heading rows that wait in its queue while no worker runs it (orphaned). A row's: the run
 * that blocks it, failed or orphaned.
 */
async function runsOf (ctx: CommandContext, target: RunTarget, withOrphaned: boolean): Promise<RunRef[]> {
  if (target.kind === 'job') return [{ workflow: target.workflow, jobId: target.jobId }]
  if (target.kind === 'row') {
    const { table, key, workflow } = target.filter
    const found = await findBlocked(ctx, target.filter)
    if (found.length === 0) throw new OperationError(`row ${table} ${key.join(',')} is not blocked${workflow ? ` by ${workflow}` : ''}`)
    return found.map((row) => ({ workflow: row.workflow, jobId: row.jobId }))
  }
  await knownWorkflow(ctx, target.workflow)
  const refs = new Map<string, RunRef>()
  for (const keys of ctx.layout.shards) {
    const queue = shardQueue(ctx.redis, keys, target.workflow)
    queue.on('error', () => {})
    try {
      for (const jobId of await queue.getRanges(['failed'], 0, -1)) refs.set(jobId, { workflow: target.workflow, jobId })
    } finally {
      await queue.close()
    }
  }
  if (withOrphaned) {
    const live = await liveConsumers(ctx.redis, ctx.layout)
    const orphaned = ctx.layout.shards.some((_, shard) => !live.has(consumerOf(shard, target.workflow)))
    for (const row of orphaned ? await findBlocked(ctx, { workflow: target.workflow }) : []) {
      if (row.reason === 'orphaned') refs.set(row.jobId, { workflow: row.workflow, jobId: row.jobId })
    }
  }
  return [...refs.values()]
}

/** Retries or discards every run of the target, each reported; exit code 1 if any could not be. */
export async function repairRuns (ctx: CommandContext, action: 'retry' | 'discard', target: RunTarget): Promise<number> {
  const runs = await runsOf(ctx, target, action === 'discard')
  if (target.kind === 'job') {
    await (action === 'retry' ? retry : discard)(ctx, target.workflow, target.jobId)
    return 0
  }
  if (runs.length === 0) {
    ctx.out(`no ${action === 'retry' ? 'failed' : 'failed or orphaned'} runs of ${target.kind === 'workflow' ? target.workflow : 'that row'}`)
    return 0
  }
  let failed = 0
  for (const run of runs) {
    try {
      await (action === 'retry' ? retry : discard)(ctx, run.workflow, run.jobId)
    } catch (error) {
      failed++
      ctx.err(`error: ${run.workflow} job ${run.jobId}: ${(error as Error).message}`)
    }
  }
  ctx.out(`${action === 'retry' ? 'retried' : 'discarded'} ${runs.length - failed} of ${runs.length} runs`)
  return failed > 0 ? 1 : 0
}
