import type { Command } from 'commander'
import { createJobOptions } from '../ingest/job-options.ts'
import { dryRun, type DryRun } from '../ingest/dry-run.ts'
import { formatTable, oneLine } from '../operations/table.ts'
import { loadWorkflows } from '../workflows/load.ts'
import { DRY_RUN_PATH, isSuccess, postBody, serviceUrl, statusLine, webhookToken } from './http.ts'
import { CliError, EXIT, type Session } from './session.ts'

/**
 * `plan <file|->`: which workflows and steps each change of a body would start, with their job
 * ids, and whether it is a duplicate; nothing is enqueued. Computed here by default, with the
 * workflows of JOBS_DIR (the ones being edited: no restart to test a `when`) against the
 * configured Redis; `--url` asks a running service's dry-run route instead (the workflows it runs).
 */
export function registerPlan (program: Command, session: Session): void {
  program.command('plan')
    .description('dry-run a Sequin body: the workflows, steps and job ids each change would start, and duplicates; enqueues nothing')
    .argument('<file>', 'a JSON body as Sequin sends it, or - to read standard input')
    .option('--url <url>', 'ask this service\'s POST /webhooks/sequin/dry-run instead of planning with JOBS_DIR here')
    .option('--json', 'print the dry run as one JSON object (the dry-run route\'s answer)')
    .addHelpText('after', `
Without --url the plan is computed in this process with the workflows in JOBS_DIR and the
duplicates known to the configured Redis: edit a workflow's when() and plan again, no restart.
With --url the running service answers, with the workflows it runs.
Exit code 0 when the body was planned (whatever each change would do), 1 when it is refused.

Example:
  changeflow plan test/fixtures/batch-mixed-orders-users.json`)
    .action((file: string, options: { url?: string, json?: boolean }) => session.run(async () => {
      const text = await session.readInput(file)
      const result = options.url === undefined ? await planHere(session, text) : await planThere(session, options.url, text)
      if (result === null) return EXIT.failed
      if (options.json) session.json(result)
      else printPlan(session, result)
      return EXIT.ok
    }))
}

async function planHere (session: Session, text: string): Promise<DryRun> {
  const config = session.config()
  const workflows = await loadWorkflows(config.JOBS_DIR)
  const outcome = await dryRun(text, { redis: session.redis(), layout: await session.layout(), workflows, jobOptions: createJobOptions(workflows, config), config })
  switch (outcome.kind) {
    case 'planned':
      return outcome.result
    case 'bad-json':
    case 'bad-envelope':
    case 'unavailable':
      throw new CliError(outcome.reason)
    case 'too-many-messages':
      throw new CliError(`${outcome.count} messages, more than MAX_BATCH_MESSAGES (${outcome.limit})`)
    default: {
      const unreachable: never = outcome
      throw new Error(`unhandled outcome ${JSON.stringify(unreachable)}`)
    }
  }
}

/** The service's answer; a refusal is printed as it came (the error contract), and is null. */
async function planThere (session: Session, url: string, text: string): Promise<DryRun | null> {
  const answer = await postBody(serviceUrl(session, url, DRY_RUN_PATH), await webhookToken(session), text)
  if (isSuccess(answer.status)) return answer.body as DryRun
  session.out(statusLine(answer.status))
  session.out(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body))
  return null
}

function printPlan (session: Session, plan: DryRun): void {
  const rows = plan.messages.flatMap((message) => {
    const head = [String(message.index), message.outcome, message.table ?? '', message.action ?? '']
    if (message.runs && message.runs.length > 0) {
      return message.runs.map((run) => [...head, run.workflow, run.verdict, run.steps.map((step) => step.jobId).join(' ')])
    }
    const why = message.issues ? oneLine(message.issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ')) : ''
    return [[...head, '', '', why]]
  })
  for (const line of formatTable(['#', 'OUTCOME', 'TABLE', 'ACTION', 'WORKFLOW', 'RUN', 'JOBS'], rows)) session.out(line)
  const { accepted, duplicates, unmatched, quarantined } = plan.counts
  session.out(`dry run: the webhook would answer ${plan.status} (${accepted} accepted, ${duplicates} duplicates, ${unmatched} unmatched, ` +
    `${quarantined} quarantined); nothing was enqueued`)
}
