import type { Command } from 'commander'
import { repairRuns, type RunTarget } from '../operations/bulk.ts'
import { blocked, discardWorkflow, dropQuarantined, layout, orphans, quarantine, redrive } from '../operations/cli-commands.ts'
import type { Session } from './session.ts'

interface RowOptions { table?: string, key?: string[] }

/** One of the three ways to name runs, or a usage error. */
function targetOf (command: Command, workflow: string | undefined, jobId: string | undefined, options: RowOptions & { all?: boolean }): RunTarget {
  const row = options.table !== undefined || options.key !== undefined
  if ([jobId !== undefined, options.all === true, row].filter(Boolean).length !== 1 || (!row && workflow === undefined)) {
    command.error(`error: ${command.name()} needs <workflow> <jobId>, <workflow> --all, or --table <table> --key <value...>`)
  }
  if (row) {
    if (options.table === undefined || options.key === undefined) command.error('error: a row is named by both --table and --key')
    return { kind: 'row', filter: { workflow, table: options.table!, key: options.key! } }
  }
  return jobId === undefined ? { kind: 'workflow', workflow: workflow! } : { kind: 'job', workflow: workflow!, jobId }
}

/** A command on quarantined messages: one by its job id, or `--all`. */
function oneOrAll (session: Session, command: Command, act: (jobId: string | undefined) => Promise<number>): void {
  command
    .argument('[jobId]', 'one quarantined message')
    .option('--all', 'every quarantined message')
    .action((jobId: string | undefined, options: { all?: boolean }) => {
      if ((jobId === undefined) === !options.all) command.error(`error: ${command.parent?.parent ? `${command.parent.name()} ` : ''}${command.name()} needs one job id or --all (not both)`)
      return session.run(() => act(jobId))
    })
}

const FOUND_IN_REDIS = `
Workflows are found in Redis, not in JOBS_DIR: work of a renamed or removed workflow can still be
retried or discarded.`

/** The operator's repair commands: blocked rows, failed and orphaned runs, the quarantine, the layout. */
export function registerRepair (program: Command, session: Session): void {
  const ops = (work: Parameters<Session['run']>[0]) => session.run(work)

  program.command('blocked')
    .description('rows that cannot move: a step failed for good, or no worker runs their workflow')
    .argument('[workflow]', 'only rows blocked by this workflow')
    .option('--table <table>', 'only rows of this table (schema.table, or table)')
    .option('--key <value...>', 'only the row with this primary key (its values, in order)')
    .option('--json', 'one JSON object per line')
    .action((workflow: string | undefined, options: RowOptions & { json?: boolean }) =>
      ops(async () => blocked(await session.operations(), options.json ?? false, { workflow, table: options.table, key: options.key })))

  for (const action of ['retry', 'discard'] as const) {
    const command = program.command(action)
      .description(action === 'retry'
        ? 'retry failed steps with fresh attempts: each run continues, then its row\'s next run'
        : 'give runs up (failed ones, or any of a workflow no worker runs): their rows move on')
      .argument('[workflow]', 'the workflow (its name in Redis)')
      .argument('[jobId]', 'one run: the job id of its failed (or orphaned) step, as blocked shows it')
      .option('--all', `every ${action === 'retry' ? 'failed' : 'failed or orphaned'} run of the workflow`)
      .option('--table <table>', 'a row: its table (schema.table, or table), with --key')
      .option('--key <value...>', 'a row: its primary key\'s values, with --table; acts on the run that blocks it')
      .addHelpText('after', `
One run:      changeflow ${action} <workflow> <jobId>
A workflow:   changeflow ${action} <workflow> --all
A row:        changeflow ${action} --table <table> --key <value...> [<workflow>]
${FOUND_IN_REDIS}`)
    command.action((workflow: string | undefined, jobId: string | undefined, options: RowOptions & { all?: boolean }) => ops(async () =>
      repairRuns(await session.operations(), action, targetOf(command, workflow, jobId, options))))
  }

  program.command('orphans')
    .description('queues holding work that no worker consumes (a workflow renamed or removed)')
    .option('--json', 'one JSON object per line')
    .action((options: { json?: boolean }) => ops(async () => orphans(await session.operations(), options.json ?? false)))

  program.command('discard-workflow')
    .description('give up every run of a workflow no worker runs any more; their rows move on')
    .argument('<workflow>')
    .option('--force', 'even though a worker still runs that workflow')
    .action((workflow: string, options: { force?: boolean }) =>
      ops(async () => discardWorkflow(await session.operations(), workflow, options.force ?? false)))

  const quarantineCommand = program.command('quarantine')
    .description('messages kept in quarantine (invalid, or their routing failed); quarantine drop removes them')
    .option('--json', 'one JSON object per line')
    .action((options: { json?: boolean }) => ops(async () => quarantine(await session.operations(), options.json ?? false)))
  oneOrAll(session, quarantineCommand.command('drop').description('remove quarantined messages for good (they never run)'),
    async (jobId) => dropQuarantined(await session.operations(), jobId))
  oneOrAll(session, program.command('redrive').description('re-ingest quarantined messages through validation, routing and dedup'),
    async (jobId) => redrive(await session.operations(), jobId))

  program.command('layout')
    .description('the keyspace\'s recorded shard count')
    .option('--reset', 'forget it (once every queue of every shard is drained), so processes may start with another REDIS_SHARDS')
    .action((options: { reset?: boolean }) => ops(async () => layout(await session.operations(), options.reset ?? false)))
}
