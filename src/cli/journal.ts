import type { Command } from 'commander'
import { Presets, SingleBar } from 'cli-progress'
import { trace, type JournalContext } from '../operations/journal-commands.ts'
import { replay, replayOptions, type ReplayProgress } from '../operations/replay-command.ts'
import { loadWorkflows } from '../workflows/load.ts'
import type { Session } from './session.ts'

interface ReplayFlags {
  workflow?: string[]
  table?: string
  action?: string[]
  key?: string[]
  from?: string
  to?: string
  force?: boolean
  all?: boolean
  generation?: string
  dryRun?: boolean
  wait: string
  json?: boolean
}

/** What trace and replay work with: the operator commands' context, the config and JOBS_DIR's workflows. */
async function journalContext (session: Session): Promise<JournalContext> {
  const config = session.config()
  return { ...await session.operations(), config, workflows: () => loadWorkflows(config.JOBS_DIR) }
}

/** On a terminal only (never in --json output or a pipe): runs finished against runs enqueued. */
function progressBar (session: Session, json: boolean): ((progress: ReplayProgress) => void) & { stop (): void } {
  const stream = session.deps.progress
  let bar: SingleBar | undefined
  const update = (progress: ReplayProgress) => {
    if (!stream?.isTTY || json) return
    if (!bar) {
      bar = new SingleBar({ stream, format: 'replay [{bar}] {value}/{total} runs finished | {selected} changes selected | {enqueued} runs enqueued | {duration}s', hideCursor: true }, Presets.shades_classic)
      bar.start(Math.max(1, progress.enqueued), 0, progress)
    }
    bar.setTotal(Math.max(1, progress.enqueued))
    bar.update(progress.finished, progress)
  }
  return Object.assign(update, { stop: () => bar?.stop() })
}

/** `trace` and `replay`: a row's history from the change journal, and workflows run again from it. */
export function registerJournal (program: Command, session: Session): void {
  program.command('trace')
    .description('what happened to one row: its journalled changes, the runs each started, every step\'s state, and what the row waits on')
    .argument('<table>', 'the table (schema.table, or table)')
    .argument('<key...>', 'the primary key\'s values, in order')
    .option('--json', 'print one JSON document')
    .addHelpText('after', `
Reads the change journal (JOURNAL_RETENTION) and, for step names, the workflows of JOBS_DIR.
Exit code 0 when the journal holds changes of the row, 1 when it holds none.

Example:
  changeflow trace orders 42`)
    .action((table: string, key: string[], options: { json?: boolean }) => session.run(async () =>
      (await trace(await journalContext(session), { table, key, json: options.json ?? false })).code))

  const command: Command = program.command('replay')
    .description('run workflows again for journalled changes, in row order with live traffic')
    .option('--workflow <name...>', 'only these workflows')
    .option('--table <table>', 'only changes of this table (schema.table, or table)')
    .option('--action <action...>', 'only these actions (insert, update, delete, read)')
    .option('--key <value...>', 'only the row with this primary key (its values, in order)')
    .option('--from <time>', 'committed at or after: an ISO time with its offset (2026-12-01T10:00:00Z), or a duration ago (30m, 2h, 1d)')
    .option('--to <time>', 'committed at or before: an ISO time with its offset, or a duration ago')
    .option('--force', 'a new replay generation: every selected run again, once, with new job ids and idempotency keys')
    .option('--generation <n>', 'with --force: this generation again (to finish an interrupted replay, or add workflows to it); starts nothing twice')
    .option('--all', 'with --force and nothing selected: the whole journal (refused without it)')
    .option('--dry-run', 'print the counts; start nothing')
    .option('--wait <duration>', 'wait this long for the runs to finish (0: return once enqueued)', '10m')
    .option('--json', 'print the report as one JSON object')
    .addHelpText('after', `
Without --force only runs a change never had start (a workflow added since, a \`when\` fixed to
match it): a run that finished, runs, waits, failed or was discarded is not started again.
With --force each selected run executes again, every step, under new ctx.idempotencyKeys: a
provider sees a new request (a second charge, a second email); with nothing selected it is
refused unless --all says the whole journal is meant. Replayed changes older than their
row's newest are change.late (skipped by late: 'skip' workflows). Exit code 1 when a replayed run
failed or had not finished within --wait, or when the journal trimmed changes before the replay
read them (the report says which).

Examples:
  changeflow replay --table orders --key 42 --dry-run
  changeflow replay --workflow order-paid --from 2h --force`)
    .action((flags: ReplayFlags) => session.run(async () => {
      const { workflow, table, action, key, from, to, generation, wait } = flags
      const one = (value: string | undefined) => (value === undefined ? undefined : [value])
      const options = replayOptions(
        { workflow, table: one(table), action, key, from: one(from), to: one(to), generation: one(generation), wait: [wait] },
        { force: flags.force ?? false, dryRun: flags.dryRun ?? false, json: flags.json ?? false, all: flags.all ?? false })
      if (typeof options === 'string') command.error(`error: ${options}`)
      const progress = progressBar(session, options.json)
      try {
        return (await replay({ ...await journalContext(session), progress }, options)).code
      } finally {
        progress.stop()
      }
    }))
}
