import { Command, CommanderError } from 'commander'
import { registerDoctor } from './doctor.ts'
import { registerJournal } from './journal.ts'
import { registerPlan } from './plan.ts'
import { registerRepair } from './repair.ts'
import { registerSend } from './send.ts'
import { EXIT, Session, type CliDeps } from './session.ts'
import { registerSimulate } from './simulate.ts'

export { EXIT, type CliDeps } from './session.ts'

const EPILOGUE = `
Exit codes:
  0  done
  1  something is wrong: the operation failed, Redis cannot be reached, the service answered
     non-2xx, doctor found a problem, simulate left changes unacknowledged, trace found nothing
     of the row, a replayed run failed or did not finish in time
  2  usage error: nothing was done

Settings are read from the environment like the service's (REDIS_URL, REDIS_PREFIX,
REDIS_CLUSTER_NODES, REDIS_SHARDS, SEQUIN_WEBHOOK_TOKENS, PORT, JOBS_DIR, ...: see .env.example).`

/**
 * The `changeflow` command tree. Each group registers its commands on the root: a later one
 * (trace, replay) is one more `register…` line.
 */
export function buildProgram (session: Session): Command {
  const program = new Command('changeflow')
    .description('Operate changeflow: send and simulate Sequin traffic, dry-run bodies, diagnose, repair blocked rows, trace and replay changes.')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => session.out(text.replace(/\n$/, '')),
      writeErr: (text) => session.err(text.replace(/\n$/, '')),
      outputError: (text, write) => write(text),
    })
    .showHelpAfterError('(changeflow --help lists the commands; changeflow <command> --help shows one)')
    .addHelpText('after', EPILOGUE)
    .helpCommand('help [command]', 'show help for a command')
  registerSend(program, session)
  registerSimulate(program, session)
  registerPlan(program, session)
  registerDoctor(program, session)
  registerRepair(program, session)
  registerJournal(program, session)
  return program
}

/** Runs one command line; resolves to the exit code and never throws. */
export async function runCli (argv: readonly string[], deps: CliDeps): Promise<number> {
  const session = new Session(deps)
  try {
    await buildProgram(session).parseAsync([...argv], { from: 'user' })
    return session.exitCode
  } catch (error) {
    // Commander ends help with code 0 and a wrong command line with 1: ours is 2.
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage
    session.err(`error: ${session.describe(error)}`)
    return EXIT.failed
  } finally {
    await session.close()
  }
}
