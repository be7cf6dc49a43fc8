import { parseArgs } from 'node:util'
import type { RedisClient } from '../redis/connection.ts'
import type { Config } from '../config.ts'
import { Layout } from '../keys.ts'
import { loadWorkflows } from '../workflows/load.ts'
import { blocked, discard, discardWorkflow, layout, orphans, quarantine, redrive, retry } from './cli-commands.ts'
import { trace, type JournalContext } from './journal-commands.ts'
import { replay, replayOptions } from './replay-command.ts'

export interface CliDeps {
  config: Config
  /** Commands that need no Redis (help, usage errors) never touch it: it may be lazy. */
  redis: RedisClient
  out: (line: string) => void
  err: (line: string) => void
}

export const USAGE = `usage: npm run cli -- <command> [options]

commands:
  blocked [--json]            rows that cannot move: a step failed for good, or no worker runs their workflow
  retry <workflow> <jobId>    retry a failed step: its run continues, then its row's next run
  discard <workflow> <jobId>  give a run up (a failed one, or any of a workflow no worker runs): the row moves on
  orphans [--json]            queues holding work that no worker consumes (a workflow renamed or removed)
  discard-workflow <workflow> [--force]
                              give up every run waiting in that workflow's queue; their rows move on
  quarantine [--json]         messages kept in quarantine (invalid, or their routing failed)
  redrive <jobId> | --all     re-ingest quarantined messages through validation, routing, dedup
  layout [--reset]            the keyspace's shard count; --reset forgets it once every queue is drained
  trace <table> <key>... [--json]
                              what happened to one row: its journalled changes, their runs and steps, what it waits on
  replay [--workflow W]... [--table T] [--action A]... [--key K]... [--from TIME] [--to TIME]
         [--force [--generation N]] [--dry-run] [--wait DURATION] [--json]
                              re-run workflows for journalled changes (commit time from/to: ISO time, or 2h for 2 hours ago);
                              without --force only runs a change never had start; --force runs each selected run again,
                              once, under new job ids and idempotency keys (a new generation; --generation N resumes one);
                              waits up to --wait (default 10m, 0: no wait) for the runs to finish
  help                        this text

  --json  one JSON object per line instead of a table (replay: one report)
  --force discard-workflow even though a worker still runs that workflow
  --reset layout: let processes start with another REDIS_SHARDS (the keyspace must be drained)

Workflows are found in Redis, not in JOBS_DIR: work of a renamed or removed workflow can be
retried or discarded. Reads REDIS_URL (default redis://127.0.0.1:6379) and REDIS_PREFIX like
the service (REDIS_CLUSTER_NODES and REDIS_SHARDS too). Exit codes: 0 done, 1 the operation
failed, 2 usage error.`

const FLAGS = ['json', 'all', 'force', 'reset', 'dry-run'] as const
type Flag = (typeof FLAGS)[number]
/** Options that take a value; several of one kind are collected. */
const VALUES = ['workflow', 'table', 'action', 'key', 'from', 'to', 'generation', 'wait'] as const
type Value = (typeof VALUES)[number]
type Values = Partial<Record<Value, string[]>>

interface Command {
  /** A last operand ending in `...` takes one or more values. */
  operands: readonly string[]
  flags: readonly Flag[]
  values?: readonly Value[]
  run (ctx: JournalContext, operands: string[], flags: Record<Flag, boolean>, values: Values): Promise<number | void>
}

const COMMANDS: Record<string, Command> = {
  blocked: { operands: [], flags: ['json'], run: (ctx, _, flags) => blocked(ctx, flags.json) },
  retry: { operands: ['workflow', 'jobId'], flags: [], run: (ctx, [workflow, jobId]) => retry(ctx, workflow!, jobId!) },
  discard: { operands: ['workflow', 'jobId'], flags: [], run: (ctx, [workflow, jobId]) => discard(ctx, workflow!, jobId!) },
  orphans: { operands: [], flags: ['json'], run: (ctx, _, flags) => orphans(ctx, flags.json) },
  'discard-workflow': { operands: ['workflow'], flags: ['force'], run: (ctx, [workflow], flags) => discardWorkflow(ctx, workflow!, flags.force) },
  quarantine: { operands: [], flags: ['json'], run: (ctx, _, flags) => quarantine(ctx, flags.json) },
  layout: { operands: [], flags: ['reset'], run: (ctx, _, flags) => layout(ctx, flags.reset) },
  // `--all` stands in for the job id; checked in `usageError`.
  redrive: { operands: ['jobId'], flags: ['all'], run: (ctx, [jobId]) => redrive(ctx, jobId) },
  trace: {
    operands: ['table', 'key...'],
    flags: ['json'],
    run: async (ctx, [table, ...key], flags) => (await trace(ctx, { table: table!, key, json: flags.json })).code,
  },
  replay: {
    operands: [],
    flags: ['force', 'dry-run', 'json'],
    values: ['workflow', 'table', 'action', 'key', 'from', 'to', 'generation', 'wait'],
    run: async (ctx, _, flags, values) => {
      const options = replayOptions(values, { force: flags.force, dryRun: flags['dry-run'], json: flags.json })
      if (typeof options === 'string') throw new UsageError(options)
      return (await replay(ctx, options)).code
    },
  },
}

class UsageError extends Error {}

/** Runs one operator command; resolves to the process exit code and never throws. */
export async function runCli (argv: readonly string[], deps: CliDeps): Promise<number> {
  let parsed: Parsed | 'help'
  try {
    parsed = parse(argv)
  } catch (error) {
    deps.err(`error: ${(error as UsageError).message}`)
    deps.err(USAGE)
    return 2
  }
  if (parsed === 'help') {
    deps.out(USAGE)
    return 0
  }

  // When Redis cannot be reached, commands fail with "Connection is closed."; the cause is this.
  let connectionError: Error | undefined
  const onError = (error: Error) => { connectionError = error }
  deps.redis.on('error', onError)
  try {
    const ctx: JournalContext = {
      config: deps.config,
      redis: deps.redis,
      layout: await keyspaceLayout(deps),
      out: deps.out,
      err: deps.err,
      workflows: () => loadWorkflows(deps.config.JOBS_DIR),
    }
    return (await parsed.command.run(ctx, parsed.operands, parsed.flags, parsed.values)) ?? 0
  } catch (error) {
    if (error instanceof UsageError) {
      deps.err(`error: ${error.message}`)
      return 2
    }
    const unreachable = connectionError && deps.redis.status !== 'ready'
    deps.err(`error: ${unreachable ? `cannot reach Redis: ${connectionError!.message}` : (error as Error)?.message ?? String(error)}`)
    return 1
  } finally {
    deps.redis.off('error', onError)
  }
}

interface Parsed {
  command: Command
  operands: string[]
  flags: Record<Flag, boolean>
  values: Values
}

function parse (argv: readonly string[]): Parsed | 'help' {
  let values: Record<string, unknown>, positionals: string[]
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        ...Object.fromEntries(FLAGS.map((flag) => [flag, { type: 'boolean' as const }])),
        ...Object.fromEntries(VALUES.map((value) => [value, { type: 'string' as const, multiple: true }])),
        help: { type: 'boolean', short: 'h' },
      },
    }))
  } catch (error) {
    // Node's messages go on with advice about `--`; the first sentence is the one-line error.
    throw new UsageError((error as Error).message.split('. ')[0]!)
  }
  const [name, ...operands] = positionals
  if (values.help || name === 'help') return 'help'
  if (name === undefined) throw new UsageError('missing command')
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name]! : undefined
  if (!command) throw new UsageError(`unknown command "${name}"`)

  const flags = Object.fromEntries(FLAGS.map((flag) => [flag, values[flag] === true])) as Record<Flag, boolean>
  for (const flag of FLAGS) {
    if (flags[flag] && !command.flags.includes(flag)) throw new UsageError(`${name} takes no --${flag}`)
  }
  const given: Values = {}
  for (const value of VALUES) {
    const found = values[value]
    if (!Array.isArray(found)) continue
    if (!command.values?.includes(value)) throw new UsageError(`${name} takes no --${value}`)
    given[value] = found
  }
  const usageError = usageOf(name, command, operands, flags.all)
  if (usageError) throw new UsageError(usageError)
  return { command, operands, flags, values: given }
}

function usageOf (name: string, command: Command, operands: readonly string[], all: boolean): string | undefined {
  if (name === 'redrive') {
    if (all) return operands.length > 0 ? 'redrive takes a job id or --all, not both' : undefined
    if (operands.length === 0) return 'redrive needs a job id, or --all'
  }
  const wanted = command.operands.map((operand) => (operand.endsWith('...') ? `<${operand.slice(0, -3)}>...` : `<${operand}>`))
  const variadic = command.operands.at(-1)?.endsWith('...') ?? false
  if (operands.length < wanted.length) return `${name} needs ${wanted.join(' ')} (missing ${wanted.slice(operands.length).join(' ')})`
  if (operands.length > wanted.length && !variadic) return `${name} takes ${wanted.join(' ') || 'no arguments'}; unexpected "${operands[wanted.length]}"`
  return undefined
}

/**
 * The layout the keyspace was recorded with: an operator's shell need not repeat REDIS_SHARDS,
 * and a different one would look at shards where nothing lives (and find nothing to do).
 */
async function keyspaceLayout (deps: CliDeps): Promise<Layout> {
  const configured = new Layout(deps.config.REDIS_PREFIX, deps.config.REDIS_SHARDS)
  const text = await deps.redis.get(configured.recordKey())
  if (text === null) return configured
  const recorded = (JSON.parse(text) as { shards?: unknown }).shards
  if (typeof recorded !== 'number' || recorded === configured.shards.length) return configured
  deps.err(`note: the keyspace is recorded with ${recorded} shards; REDIS_SHARDS says ${configured.shards.length}: using ${recorded}`)
  return new Layout(deps.config.REDIS_PREFIX, recorded)
}
