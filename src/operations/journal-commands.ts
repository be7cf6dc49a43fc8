import type { Config } from '../config.ts'
import { traceRow, type RowTrace, type StepTrace } from '../journal/trace.ts'
import type { Workflow } from '../workflows/define.ts'
import type { CommandContext } from './cli-commands.ts'
import { formatTable, oneLine } from './table.ts'

/** What trace and replay need besides the operator commands' context. */
export interface JournalContext extends CommandContext {
  config: Pick<Config, 'DEDUP_TTL' | 'JOURNAL_RETENTION' | 'QUARANTINE_LIMIT' | 'STEP_ATTEMPTS' | 'STEP_BACKOFF' | 'KEEP_COMPLETED' |
    'KEEP_COMPLETED_AGE' | 'REDIS_WAIT_REPLICAS' | 'REDIS_WAIT_TIMEOUT'>
  /** The workflows of JOBS_DIR: their steps (trace), and what a replay runs. */
  workflows (): Promise<readonly Workflow[]>
}

/** A command's answer: what it found (printed as text, or as JSON with --json), and its exit code. */
export interface CommandResult<T> {
  code: number
  data: T
}

/** Entries accepted before this are past JOURNAL_RETENTION (those not yet trimmed are left out). */
export const journalSince = (config: Pick<Config, 'JOURNAL_RETENTION'>, now = Date.now()) =>
  config.JOURNAL_RETENTION > 0 ? now - config.JOURNAL_RETENTION : 0

export interface TraceOptions {
  table: string
  key: string[]
  json: boolean
}

/** `trace <table> <primary key...>`: exit 1 when the journal holds no change of the row. */
export async function trace (ctx: JournalContext, options: TraceOptions): Promise<CommandResult<RowTrace>> {
  const workflows = await ctx.workflows()
  const data = await traceRow(ctx.redis, ctx.layout, workflows, options.table, options.key, journalSince(ctx.config))
  if (options.json) ctx.out(JSON.stringify(data))
  else for (const line of traceText(data)) ctx.out(line)
  if (data.changes.length > 0) return { code: 0, data }
  const off = ctx.config.JOURNAL_RETENTION === 0 ? ' (JOURNAL_RETENTION is 0 here: the journal is off)' : ''
  ctx.err(`error: the journal holds no change of ${options.table} [${options.key.join(', ')}] from the last ${ctx.config.JOURNAL_RETENTION / 1000} s${off}`)
  return { code: 1, data }
}

function traceText (trace: RowTrace): string[] {
  const count = trace.changes.length
  const lines = [`${trace.table} [${trace.key.join(', ')}]: ${count} journalled change${count === 1 ? '' : 's'}`]
  if (count === 0) return lines
  const rows: string[][] = []
  for (const change of trace.changes) {
    const position = change.commit.lsn === null ? '' : `${change.commit.lsn}:${change.commit.idx}`
    let first = true
    const changeCells = () => (first ? [change.acceptedAt, change.action, change.commit.timestamp, position] : ['', '', '', ''])
    for (const run of change.runs) {
      const runCells = [run.workflow, `${run.state}${run.late ? ' (late)' : ''}${run.replay ? ` (replay ${run.replay})` : ''}`]
      const steps: StepTrace[] = run.steps.length > 0 ? run.steps : [{ step: '?', jobId: '', state: '(not defined in JOBS_DIR)', attempts: 0 }]
      steps.forEach((step, i) => {
        const outcome = step.error ?? (step.result === undefined ? '' : JSON.stringify(step.result))
        rows.push([...changeCells(), ...(i === 0 ? runCells : ['', '']), step.step, step.state, String(step.attempts), oneLine(outcome)])
        first = false
      })
    }
    if (change.runs.length === 0) rows.push([...changeCells(), '', '', '', '', '', ''])
  }
  lines.push(...formatTable(['ACCEPTED', 'ACTION', 'COMMITTED', 'POSITION', 'WORKFLOW', 'RUN', 'STEP', 'STATE', 'ATTEMPTS', 'RESULT / ERROR'], rows))
  for (const row of trace.rows) lines.push(`waiting on: ${row.waitingOn}`)
  return lines
}
