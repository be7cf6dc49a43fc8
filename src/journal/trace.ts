import { Job, type Queue } from 'bullmq'
import { changeIdentity, replayChangeId, rowId, runId, stepJobId } from '../ingest/identity.ts'
import type { StepJobData } from '../ingest/job-data.ts'
import { BLOCK_REASONS, type BlockReason, type Keyspace, type Layout } from '../keys.ts'
import type { RedisClient } from '../redis/connection.ts'
import { shardQueue } from '../runs/orphans.ts'
import { rowHead } from '../runs/rows.ts'
import type { Workflow } from '../workflows/define.ts'
import { rowEntries, type JournalEntry } from './read.ts'

export interface StepTrace {
  step: string
  jobId: string
  /** BullMQ's state of the job; `completed (removed)` once trimmed; `not started`. */
  state: string
  attempts: number
  error?: string
  result?: unknown
  finishedAt?: string
}

export type RunState = 'finished' | 'discarded' | 'waiting its turn' | 'running' | 'failed' | 'not started'

export interface RunTrace {
  workflow: string
  run: string
  /** The forced replay generation that started it; absent for the change's own run. */
  replay?: number
  state: RunState
  late: boolean
  /** Empty when the workflow is not defined in JOBS_DIR here: its steps are not known. */
  steps: StepTrace[]
}

export interface ChangeTrace {
  changeId: string
  acceptedAt: string
  action: string
  table: string
  key: string[]
  source: string
  commit: { lsn: string | null, idx: string | null, timestamp: string }
  runs: RunTrace[]
}

export interface RowWait {
  /** The row's id (source, table, primary key): what rowq, blocked and job data name. */
  row: string
  /** Runs in the row's queue: the head (running, or blocked) and those waiting behind it. */
  queued: number
  head?: { workflow: string, run: string, jobId: string, step: string, state: string, error?: string }
  blocked?: { reason: BlockReason, since: string }
  /** What the row waits on, in a sentence. */
  waitingOn: string
}

export interface RowTrace {
  table: string
  key: string[]
  changes: ChangeTrace[]
  rows: RowWait[]
}

const text = (value: unknown) => (value === null || value === undefined ? null : String(value))

/**
 * What happened to one row ("what happened to order 42?"): its journalled changes, the runs each
 * started with every step's state, attempts, error and result, and what the row waits on. `table`
 * is a table name or `schema.table`; `since`: entries accepted earlier are past the retention.
 */
export async function traceRow (redis: RedisClient, layout: Layout, workflows: readonly Workflow[], table: string, key: readonly string[], since: number): Promise<RowTrace> {
  const [schema, name] = table.includes('.') ? [table.slice(0, table.indexOf('.')), table.slice(table.indexOf('.') + 1)] : [undefined, table]
  const entries = (await rowEntries(redis, layout.shards, name, key, since))
    .filter((entry) => schema === undefined || entry.message.metadata.table_schema === schema)
  const queues = new Map<string, Queue>()
  const queueOf = (keys: Keyspace, workflow: string) => {
    const id = `${keys.bullPrefix}/${workflow}`
    let queue = queues.get(id)
    if (!queue) queues.set(id, queue = shardQueue(redis, keys, workflow))
    return queue
  }
  try {
    const steps = new Map(workflows.map((workflow) => [workflow.name, workflow.steps.map((step) => step.name)]))
    const changes: ChangeTrace[] = []
    const rows = new Map<string, Keyspace>()
    const generations = Number(await redis.get(layout.home.replayGeneration()) ?? 0)
    for (const entry of entries) {
      const { metadata } = entry.message
      const runs = await Promise.all(entry.workflows.map((workflow) => traceRun(redis, layout, queueOf, entry, entry.changeId, workflow, steps.get(workflow))))
      runs.push(...await replayedRuns(redis, layout, queueOf, entry, generations, steps))
      const source = changeIdentity(metadata).source
      const pkRow = rowId(source, metadata.table_schema, metadata.table_name, 'pk', metadata.record_pks ?? [])
      rows.set(pkRow, layout.shards[layout.shardOf(pkRow)]!)
      for (const run of runs) for (const row of run.rows) rows.set(row, layout.shards[layout.shardOf(row)]!)
      changes.push({
        changeId: entry.changeId,
        acceptedAt: new Date(entry.acceptedAt).toISOString(),
        action: entry.message.action,
        table: `${metadata.table_schema}.${metadata.table_name}`,
        key: metadata.record_pks ?? [],
        source,
        commit: { lsn: text(metadata.commit_lsn), idx: text(metadata.commit_idx), timestamp: metadata.commit_timestamp },
        runs: runs.map(({ rows: _rows, ...run }) => run),
      })
    }
    const waits = await Promise.all([...rows].map(([row, keys]) => rowWait(redis, keys, row, queueOf)))
    return { table, key: [...key], changes, rows: waits }
  } finally {
    await Promise.all([...queues.values()].map((queue) => queue.close()))
  }
}

type QueueOf = (keys: Keyspace, workflow: string) => Queue

type Traced = RunTrace & { rows: string[] }

/**
 * The runs forced replays started for a change: of its workflows then and of those defined now
 * (a replay routes the change again), each under the generation's identity (the newest 100).
 */
async function replayedRuns (redis: RedisClient, layout: Layout, queueOf: QueueOf, entry: JournalEntry, generations: number, steps: Map<string, string[]>): Promise<Traced[]> {
  const names = [...new Set([...entry.workflows, ...steps.keys()])]
  const found: Traced[] = []
  const newest = Array.from({ length: Math.min(100, generations) }, (_, i) => generations - i).reverse()
  // Asked all at once (one round trip, pipelined on the connection), not one generation at a time.
  const touched = await Promise.all(newest.map(async (generation) => {
    const seen = await Promise.all(layout.shards.map((keys) => redis.exists(keys.seen(replayChangeId(entry.changeId, generation)))))
    return seen.some((exists) => exists === 1) ? generation : null
  }))
  for (const generation of touched) {
    if (generation === null) continue
    const id = replayChangeId(entry.changeId, generation)
    const runs = await Promise.all(names.map((workflow) => traceRun(redis, layout, queueOf, entry, id, workflow, steps.get(workflow))))
    found.push(...runs.filter((run) => run.state !== 'not started').map((run) => ({ ...run, replay: generation })))
  }
  return found
}

/** One run of a journalled change, in whichever shard holds it (the shard of its row). */
async function traceRun (redis: RedisClient, layout: Layout, queueOf: QueueOf, entry: JournalEntry, changeId: string, workflow: string, steps: string[] | undefined): Promise<Traced> {
  const run = runId(changeId, workflow)
  // The entry's shard first: with one shard, or a primary-key row, it is the run's.
  const order = [entry.shard, ...layout.shards.keys()].filter((shard, i, all) => all.indexOf(shard) === i)
  let found: Traced | undefined
  for (const shard of order) {
    const keys = layout.shards[shard]!
    const [marker, record] = await Promise.all([redis.hget(keys.seen(changeId), workflow), redis.hgetall(keys.run(run))])
    const jobs = await Promise.all((steps ?? []).map((step) => Job.fromId<StepJobData>(queueOf(keys, workflow), stepJobId(run, step))))
    const traced = { workflow, run, late: record.late === '1', rows: jobs.flatMap((job) => (job?.data.row ? [job.data.row] : [])) }
    const stepTraces = await Promise.all((steps ?? []).map((step, i) => stepTrace(step, stepJobId(run, step), jobs[i], record[`r${i}`], marker === 'd', record.discarded !== undefined)))
    const state = runState(marker, record, stepTraces)
    found ??= { ...traced, state, steps: stepTraces }
    if (state !== 'not started') return { ...traced, state, steps: stepTraces }
  }
  return found!
}

async function stepTrace (step: string, jobId: string, job: Job<StepJobData> | undefined, recorded: string | undefined, runFinished: boolean, discarded: boolean): Promise<StepTrace> {
  if (!job) {
    const state = recorded !== undefined || runFinished ? 'completed (removed)' : discarded ? 'not run (discarded)' : 'not started'
    return { step, jobId, state, attempts: 0, ...(recorded !== undefined ? { result: JSON.parse(recorded) } : {}) }
  }
  const state = await job.getState()
  return {
    step,
    jobId,
    state,
    attempts: job.attemptsMade,
    ...(job.failedReason ? { error: job.failedReason } : {}),
    ...(state === 'completed' ? { result: job.returnvalue } : {}),
    ...(job.finishedOn ? { finishedAt: new Date(job.finishedOn).toISOString() } : {}),
  }
}

function runState (marker: string | null, record: Record<string, string>, steps: readonly StepTrace[]): RunState {
  if (marker === 'd') return 'finished'
  if (record.discarded !== undefined) return 'discarded'
  if (record.pj !== undefined) return 'waiting its turn'
  if (steps.some((step) => step.state === 'failed')) return 'failed'
  if (record.cj !== undefined || Object.keys(record).some((field) => /^r\d+$/.test(field)) || steps.some((step) => step.state !== 'not started')) return 'running'
  return 'not started'
}

/** What a row's queue holds and what it waits on. */
async function rowWait (redis: RedisClient, keys: Keyspace, row: string, queueOf: QueueOf): Promise<RowWait> {
  const head = await rowHead(redis, keys, row)
  const scores = await Promise.all(BLOCK_REASONS.map((reason) => redis.zscore(keys.blocked(reason), row)))
  const blockedAt = BLOCK_REASONS.map((reason, i) => ({ reason, score: scores[i] })).find(({ score }) => score !== null && score !== undefined)
  const blocked = blockedAt && { reason: blockedAt.reason, since: new Date(Number(blockedAt.score)).toISOString() }
  if (!head) return { row, queued: 0, ...(blocked ? { blocked } : {}), waitingOn: 'nothing: no run of the row waits or runs' }
  const job = await Job.fromId<StepJobData>(queueOf(keys, head.queue), head.jobId)
  const state = job ? await job.getState() : 'gone'
  const step = job?.name ?? head.jobId.slice(0, head.jobId.indexOf('.')) // a step job id is `<step>.<run>`
  const behind = head.length - 1
  const waiting = behind > 0 ? ` (${behind} run${behind === 1 ? '' : 's'} of the row wait behind it)` : ''
  let waitingOn = `${head.queue} run ${head.run}, step ${step}: ${state}${waiting}`
  if (state === 'failed') waitingOn = `${head.queue} step ${step} failed for good (${job?.failedReason ?? ''}): retry or discard job ${head.jobId}${waiting}`
  if (blocked?.reason === 'orphaned') waitingOn = `no worker runs ${head.queue}: its job ${head.jobId} waits${waiting}`
  return {
    row,
    queued: head.length,
    head: { workflow: head.queue, run: head.run, jobId: head.jobId, step, state, ...(job?.failedReason ? { error: job.failedReason } : {}) },
    ...(blocked ? { blocked } : {}),
    waitingOn,
  }
}
