import { readFile } from 'node:fs/promises'
import { CommanderError } from 'commander'
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { DEFAULT_REDIS_URL, loadConfig, type Config } from '../config.ts'
import { Layout } from '../keys.ts'
import type { RedisClient } from '../redis/connection.ts'
import type { CommandContext } from '../operations/cli-commands.ts'

/** Exit codes scripts can rely on. */
export const EXIT = {
  /** Done; the answer is what was asked. */
  ok: 0,
  /** Something is wrong: the operation failed, a check found a problem, the service said no. */
  failed: 1,
  /** The command line is wrong: nothing was done. */
  usage: 2,
} as const

export interface CliDeps {
  /** The environment the configuration is read from (the entry passes process.env)... */
  env?: Record<string, string | undefined>
  /** ...or a configuration already parsed (tests). */
  config?: Config
  /** A Redis client for the commands that need one; made from the configuration when absent (and then closed). */
  redis?: RedisClient
  out: (line: string) => void
  err: (line: string) => void
  /** What `-` reads. */
  stdin?: NodeJS.ReadableStream
  /** Where progress bars are drawn: a terminal (stderr); none when absent or not a TTY. */
  progress?: NodeJS.WriteStream
}

/** An expected failure of a command: printed as `error: <message>`, exit code 1. */
export class CliError extends Error {
  override name = 'CliError'
}

/**
 * What one command invocation shares: the configuration and Redis, made only when a command
 * asks (help, usage errors and `send` need no Redis), and the exit code.
 */
export class Session {
  readonly deps: CliDeps
  exitCode: number = EXIT.ok
  #config?: Config
  #redis?: RedisClient
  #ownRedis = false
  #connectionError?: Error
  readonly #onError = (error: Error) => { this.#connectionError = error }

  constructor (deps: CliDeps) {
    this.deps = deps
  }

  out (line: string): void {
    this.deps.out(line)
  }

  err (line: string): void {
    this.deps.err(line)
  }

  /** One JSON document a line: what `--json` prints. */
  json (value: unknown): void {
    this.deps.out(JSON.stringify(value))
  }

  config (): Config {
    this.#config ??= this.deps.config ?? loadConfig(this.deps.env ?? {})
    return this.#config
  }

  redis (): RedisClient {
    if (this.#redis) return this.#redis
    this.#redis = this.deps.redis ?? cliRedis(this.config())
    this.#ownRedis = this.deps.redis === undefined
    // Connection errors reach the command that needed Redis, which reports them; no unhandled event.
    this.#redis.on('error', this.#onError)
    return this.#redis
  }

  /** The keyspace as recorded in Redis: an operator's shell need not repeat REDIS_SHARDS. */
  async layout (): Promise<Layout> {
    const config = this.config()
    const configured = new Layout(config.REDIS_PREFIX, config.REDIS_SHARDS)
    const text = await this.redis().get(configured.recordKey())
    if (text === null) return configured
    const recorded = (JSON.parse(text) as { shards?: unknown }).shards
    if (typeof recorded !== 'number' || recorded === configured.shards.length) return configured
    this.err(`note: the keyspace is recorded with ${recorded} shards; REDIS_SHARDS says ${configured.shards.length}: using ${recorded}`)
    return new Layout(config.REDIS_PREFIX, recorded)
  }

  /** What the operator commands (operations/cli-commands.ts) work with. */
  async operations (): Promise<CommandContext> {
    return { config: this.config(), redis: this.redis(), layout: await this.layout(), out: this.deps.out, err: this.deps.err }
  }

  /** Runs a command's work: an error becomes one line on stderr and exit code 1, never a stack. */
  async run (work: () => Promise<number | void>): Promise<void> {
    try {
      const code = await work()
      if (typeof code === 'number') this.exitCode = Math.max(this.exitCode, code)
    } catch (error) {
      if (error instanceof CommanderError) throw error // a usage error found late: exit 2
      this.err(`error: ${this.describe(error)}`)
      this.exitCode = EXIT.failed
    }
  }

  describe (error: unknown): string {
    // When Redis cannot be reached, commands fail with "Connection is closed."; the cause is this.
    if (this.#redis && this.#connectionError && this.#redis.status !== 'ready') return `cannot reach Redis: ${this.#connectionError.message}`
    return (error as Error)?.message ?? String(error)
  }

  /** A file's text, or standard input's for `-`. */
  async readInput (path: string): Promise<string> {
    if (path !== '-') {
      try {
        return await readFile(path, 'utf8')
      } catch (error) {
        throw new CliError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
      }
    }
    const stdin = this.deps.stdin
    if (!stdin) throw new CliError('no standard input to read')
    const chunks: Buffer[] = []
    for await (const chunk of stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))
    return Buffer.concat(chunks).toString('utf8')
  }

  async close (): Promise<void> {
    this.#redis?.off('error', this.#onError)
    if (this.#ownRedis) this.#redis?.disconnect()
  }
}

/**
 * The CLI's Redis client: lazy, so that commands that need none never connect; an unreachable
 * Redis ends the connection after a few attempts, so commands fail with its error instead of
 * waiting (BullMQ waits for 'ready' or 'end').
 */
export function cliRedis (config: Pick<Config, 'REDIS_URL' | 'REDIS_CLUSTER_NODES'>): RedisClient {
  const options: RedisOptions = {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 5_000,
    connectionName: 'changeflow-cli',
    retryStrategy: (attempt) => (attempt > 2 ? null : attempt * 250),
  }
  const nodes = config.REDIS_CLUSTER_NODES?.map((node) => ({
    host: node.slice(0, node.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1'),
    port: Number(node.slice(node.lastIndexOf(':') + 1)),
  }))
  return nodes
    ? new Cluster(nodes, { lazyConnect: true, redisOptions: options, clusterRetryStrategy: (attempt) => (attempt > 2 ? null : attempt * 250) })
    : new Redis(config.REDIS_URL ?? DEFAULT_REDIS_URL, options)
}
