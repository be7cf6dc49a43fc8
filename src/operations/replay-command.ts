import { parseDuration } from '../config.ts'
import { actions as ACTIONS } from '../sequin/message.ts'
import { commitReplay, inChunks, planReplay, runStatus, selectChanges, type ReplayRun, type ReplaySelection, type RunStatus } from '../journal/replay.ts'
import type { JournalGap } from '../journal/read.ts'
import type { RedisClient } from '../redis/connection.ts'
import { OperationError } from './cli-commands.ts'
import { journalSince, type CommandResult, type JournalContext } from './journal-commands.ts'

export interface ReplayOptions extends ReplaySelection {
  /** A new generation: every selected run again, under new job ids and idempotency keys. */
  force: boolean
  /** With force: this generation again (an interrupted replay), instead of a new one. */
  generation?: number
  dryRun: boolean
  json: boolean
  /** How long to wait for the enqueued runs to finish (0: not at all). */
  waitMs: number
}

export interface ReplayReport {
  /** 0: without --force (the changes' own runs); 1 and up: a forced replay. */
  generation: number
  dryRun: boolean
  selected: number
  /** Runs the selected changes start now (routed by this release's workflows). */
  runs: number
  /** Of those, runs that exist already (finished, running, waiting or failed): not started again. */
  existing: number
  enqueued: number
  /** Enqueued runs whose change is older than its row's newest (marked `change.late`). */
  late: number
  /** Neither there nor enqueued: `late: 'skip'`, a workflow given up, or an outcome forgotten (past DEDUP_TTL). */
  notStarted: number
  /** Selected changes that start none of the selected workflows now, or fail planning. */
  unmatched: number
  finished: number
  failed: number
  unfinished: number
  /**
   * Journal entries deleted (the journal's length or age bound) after the replay began and before
   * it read them: whatever of them it selected was not replayed. Exit 1 when there are any.
   */
  trimmed: JournalGap[]
}

export interface ReplayProgress {
  selected: number
  enqueued: number
  finished: number
}

type ReplayContext = JournalContext & {
  /** Called as the replay moves on: a progress bar's hook. */
  progress?: (progress: ReplayProgress) => void
}

/** Changes a replay reads, plans and writes at a time. */
const REPLAY_CHUNK = 1_000

async function statuses (redis: RedisClient, runs: readonly ReplayRun[]): Promise<RunStatus[]> {
  const found: RunStatus[] = []
  for (let at = 0; at < runs.length; at += 200) found.push(...await Promise.all(runs.slice(at, at + 200).map((run) => runStatus(redis, run))))
  return found
}

async function generationOf (ctx: ReplayContext, options: ReplayOptions): Promise<number> {
  if (!options.force) return 0
  const key = ctx.layout.home.replayGeneration()
  if (options.generation === undefined) return options.dryRun ? Number(await ctx.redis.get(key) ?? 0) + 1 : ctx.redis.incr(key)
  const last = Number(await ctx.redis.get(key) ?? 0)
  if (options.generation < 1 || options.generation > last) throw new OperationError(`no replay generation ${options.generation} was started (the last is ${last})`)
  return options.generation
}

/**
 * `replay`: re-runs workflows for journalled changes, through the ingest path (row queues, so in
 * order with live traffic). Exit 1 when a replayed run failed or had not finished in `waitMs`.
 */
export async function replay (ctx: ReplayContext, options: ReplayOptions): Promise<CommandResult<ReplayReport>> {
  if (ctx.config.JOURNAL_RETENTION === 0) throw new OperationError('the change journal is off here (JOURNAL_RETENTION=0): there is nothing to replay')
  const workflows = await ctx.workflows()
  const unknown = options.workflows?.filter((name) => !workflows.some((workflow) => workflow.name === name))
  if (unknown?.length) throw new OperationError(`no workflow of JOBS_DIR is named ${unknown.join(', ')}: a replay runs the workflows defined there`)
  const generation = await generationOf(ctx, options)
  const report: ReplayReport = {
    generation,
    dryRun: options.dryRun,
    selected: 0,
    runs: 0,
    existing: 0,
    enqueued: 0,
    late: 0,
    notStarted: 0,
    unmatched: 0,
    finished: 0,
    failed: 0,
    unfinished: 0,
    trimmed: [],
  }
  const progress = () => ctx.progress?.({ selected: report.selected, enqueued: report.enqueued, finished: report.finished })
  progress()
  const limits = { dedupTtlMs: ctx.config.DEDUP_TTL, quarantineLimit: ctx.config.QUARANTINE_LIMIT, replication: { replicas: ctx.config.REDIS_WAIT_REPLICAS, timeoutMs: ctx.config.REDIS_WAIT_TIMEOUT } }
  // The runs started, to be followed to their end: the one thing a replay keeps of every change.
  const enqueued: ReplayRun[] = []
  // A chunk of the selection at a time, planned, checked and written before the next is read: a
  // replay of the whole journal holds a chunk's changes, not the journal's.
  for await (const entries of inChunks(selectChanges(ctx.redis, ctx.layout, options, journalSince(ctx.config), (gap) => report.trimmed.push(gap)), REPLAY_CHUNK)) {
    const plan = planReplay(entries, workflows, ctx.config, ctx.layout, options, generation)
    const before = await statuses(ctx.redis, plan.runs)
    report.selected += entries.length
    report.runs += plan.runs.length
    report.existing += before.filter((status) => status !== 'absent').length
    report.unmatched += plan.unmatched + plan.invalid
    progress()
    if (options.dryRun) continue

    const absent = plan.runs.filter((_, i) => before[i] === 'absent')
    let checked = 0
    let started = 0
    const totals = await commitReplay(ctx.redis, ctx.layout, plan, limits, async (batch) => {
      const ids = new Set(batch.changes.map((change) => change.changeId))
      const written = absent.slice(checked).filter((run) => ids.has(run.changeId))
      checked += written.length
      const after = await statuses(ctx.redis, written)
      const now = written.filter((_, i) => after[i] !== 'absent')
      started += now.length
      report.enqueued += now.length
      enqueued.push(...now)
      progress()
    })
    report.late += totals.late
    report.notStarted += absent.length - started
  }
  if (options.dryRun) return done(ctx, options, report)

  await waitForRuns(ctx.redis, enqueued, options.waitMs, (counts) => {
    Object.assign(report, counts)
    progress()
  })
  return done(ctx, options, report)
}

/** Follows the runs until each finished or failed, or `waitMs` passed (once, when 0). */
async function waitForRuns (redis: RedisClient, runs: readonly ReplayRun[], waitMs: number, report: (counts: Pick<ReplayReport, 'finished' | 'failed' | 'unfinished'>) => void): Promise<void> {
  const deadline = Date.now() + waitMs
  const last = new Map<ReplayRun, RunStatus>()
  for (let pending = runs; ;) {
    const now = await statuses(redis, pending)
    pending.forEach((run, i) => last.set(run, now[i]!))
    pending = pending.filter((_, i) => now[i] === 'pending')
    const count = (status: RunStatus) => [...last.values()].filter((found) => found === status).length
    report({ finished: count('finished'), failed: count('failed'), unfinished: pending.length })
    if (pending.length === 0 || Date.now() >= deadline) return
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

function done (ctx: ReplayContext, options: ReplayOptions, report: ReplayReport): CommandResult<ReplayReport> {
  if (options.json) ctx.out(JSON.stringify(report))
  else for (const line of reportText(report, options.waitMs)) ctx.out(line)
  const code = report.trimmed.length > 0 || (!report.dryRun && (report.failed > 0 || (options.waitMs > 0 && report.unfinished > 0))) ? 1 : 0
  return { code, data: report }
}

function reportText (report: ReplayReport, waitMs: number): string[] {
  const what = report.generation === 0
    ? 'replay without --force: only runs the changes never had start'
    : `replay generation ${report.generation} (--force: every selected run again, with new job ids and idempotency keys)`
  const lines = [
    `${report.dryRun ? 'dry run: ' : ''}${what}`,
    `selected ${report.selected} journalled changes: ${report.runs} runs (${report.unmatched} changes start none of the selected workflows now)`,
    `  already there (finished, running, waiting or failed), not started again: ${report.existing}`,
  ]
  // Entry ids begin with the time they were accepted.
  const time = (id: string) => new Date(Number(id.slice(0, id.indexOf('-')))).toISOString()
  for (const gap of report.trimmed) {
    const until = gap.before === null ? 'up to the newest it held when the replay began' : `and before ${time(gap.before)}`
    lines.push(`  trimmed from shard ${gap.shard}'s journal before the replay read them: changes accepted after ${time(gap.after)} ${until}; those selected were not replayed (raise JOURNAL_MAX_LEN, or replay sooner)`)
  }
  if (report.dryRun) return [...lines, `  would start: ${report.runs - report.existing}`]
  lines.push(`  enqueued: ${report.enqueued} (${report.late} late: older than their row's newest change)`)
  if (report.notStarted > 0) lines.push(`  not started: ${report.notStarted} (late: 'skip', a workflow given up, or the change's outcome forgotten past DEDUP_TTL)`)
  if (waitMs > 0) lines.push(`  finished: ${report.finished}, failed: ${report.failed}, unfinished: ${report.unfinished}`)
  return lines
}

// Commit timestamps are UTC: a time without its offset would be read in this process's zone, and
// Date.parse alone takes "hello 2020" for 2020 and February 30 for March 2.
const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-](\d{2}):(\d{2}))$/i

/** A commit time given as ISO text with its offset, or as a duration ago (`2h`). */
function timeOf (text: string, now: number): number | undefined {
  const ago = parseDuration(text, 's')
  if (ago !== undefined) return now - ago
  const match = ISO_TIME.exec(text.trim())
  if (!match) return undefined
  // Absent parts are NaN, which no bound below refuses.
  const [year, month, day, hour, minute, second, offsetHours, offsetMinutes] = match.slice(1).map(Number) as number[]
  const date = new Date(Date.UTC(year!, month! - 1, day!))
  const real = date.getUTCFullYear() === year && date.getUTCMonth() === month! - 1 && date.getUTCDate() === day
  if (!real || hour! > 23 || minute! > 59 || second! > 59 || offsetHours! > 23 || offsetMinutes! > 59) return undefined
  return Date.parse(text.trim())
}

type ReplayValues = Partial<Record<'workflow' | 'table' | 'action' | 'key' | 'from' | 'to' | 'generation' | 'wait', string[]>>

/** Replay's options from the command line's values, or a usage error's message. */
export function replayOptions (values: ReplayValues, flags: Pick<ReplayOptions, 'force' | 'dryRun' | 'json'> & { all?: boolean }, now = Date.now()): ReplayOptions | string {
  const one = (name: keyof ReplayValues) => values[name]?.at(-1)
  const list = (name: keyof ReplayValues) => values[name]?.flatMap((item) => item.split(',')).map((item) => item.trim()).filter(Boolean)
  const { all = false, ...modes } = flags
  const options: ReplayOptions = { ...modes, workflows: list('workflow'), table: one('table'), actions: list('action'), key: values.key, waitMs: 10 * 60_000 }
  const action = options.actions?.find((name) => !(ACTIONS as readonly string[]).includes(name))
  if (action !== undefined) return `--action takes ${ACTIONS.slice(0, -1).join(', ')} or ${ACTIONS.at(-1)}; got "${action}"`
  const window = { from: values.from?.at(-1), to: values.to?.at(-1) }
  for (const [end, text] of Object.entries(window) as Array<[keyof typeof window, string | undefined]>) {
    if (text === undefined) continue
    const at = timeOf(text, now)
    if (at === undefined) return `--${end} takes an ISO time with its offset (2026-12-01T10:00:00Z) or a duration ago (30m, 2h, 1d); got "${text}"`
    options[end] = at
  }
  if (options.from !== undefined && options.to !== undefined && options.from > options.to) return '--from is after --to: the window holds nothing'
  const wait = one('wait')
  if (wait !== undefined) {
    const ms = parseDuration(wait, 's')
    if (ms === undefined) return `--wait takes a duration (30s, 10m, 0); got "${wait}"`
    options.waitMs = ms
  }
  const generation = one('generation')
  if (generation !== undefined) {
    if (!flags.force) return '--generation names a forced replay: add --force'
    if (!/^\d+$/.test(generation)) return `--generation takes a number; got "${generation}"`
    options.generation = Number(generation)
  }
  // Every step of every journalled change again, under new idempotency keys, is never a default.
  const selected = [values.workflow, values.table, values.action, values.key, values.from, values.to].some((value) => value !== undefined)
  if (flags.force && !flags.dryRun && !selected && !all) {
    return 'a forced replay with no selection runs every journalled change\'s workflows again, each step under a new idempotency key (a second charge, a second email): select changes (--workflow, --table, --action, --key, --from, --to), or say --all'
  }
  return options
}
