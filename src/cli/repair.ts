import type { Command } from 'commander'
import { blocked, discard, discardWorkflow, layout, orphans, quarantine, redrive, retry } from '../operations/cli-commands.ts'
import type { Session } from './session.ts'

const FOUND_IN_REDIS = `
Workflows are found in Redis, not in JOBS_DIR: work of a renamed or removed workflow can still be
retried or discarded.`

/** The operator's repair commands: blocked rows, failed and orphaned runs, the quarantine, the layout. */
export function registerRepair (program: Command, session: Session): void {
  const ops = (work: Parameters<Session['run']>[0]) => session.run(work)

  program.command('blocked')
    .description('rows that cannot move: a step failed for good, or no worker runs their workflow')
    .option('--json', 'one JSON object per line')
    .action((options: { json?: boolean }) => ops(async () => blocked(await session.operations(), options.json ?? false)))

  program.command('retry')
    .description('retry a failed step with fresh attempts: its run continues, then its row\'s next run')
    .argument('<workflow>')
    .argument('<jobId>')
    .addHelpText('after', FOUND_IN_REDIS)
    .action((workflow: string, jobId: string) => ops(async () => retry(await session.operations(), workflow, jobId)))

  program.command('discard')
    .description('give a run up (a failed one, or any of a workflow no worker runs): its row moves on')
    .argument('<workflow>')
    .argument('<jobId>')
    .addHelpText('after', FOUND_IN_REDIS)
    .action((workflow: string, jobId: string) => ops(async () => discard(await session.operations(), workflow, jobId)))

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

  program.command('quarantine')
    .description('messages kept in quarantine (invalid, or their routing failed)')
    .option('--json', 'one JSON object per line')
    .action((options: { json?: boolean }) => ops(async () => quarantine(await session.operations(), options.json ?? false)))

  const redriveCommand = program.command('redrive')
    .description('re-ingest quarantined messages through validation, routing and dedup')
    .argument('[jobId]', 'one quarantined message')
    .option('--all', 'every quarantined message')
    .action((jobId: string | undefined, options: { all?: boolean }) => ops(async () => {
      if ((jobId === undefined) === !options.all) redriveCommand.error('error: redrive needs one job id or --all (not both)')
      return redrive(await session.operations(), jobId)
    }))

  program.command('layout')
    .description('the keyspace\'s recorded shard count')
    .option('--reset', 'forget it (once every queue of every shard is drained), so processes may start with another REDIS_SHARDS')
    .action((options: { reset?: boolean }) => ops(async () => layout(await session.operations(), options.reset ?? false)))
}
