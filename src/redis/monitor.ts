import type { Logger } from 'pino'
import { checkRedis, type RedisCheck } from './checks.ts'
import type { Layout } from '../keys.ts'
import type { RedisClient } from './connection.ts'
import { LayoutError, recordLayout } from './layout.ts'
import { createTripwireState, type TripwireState } from './tripwire.ts'

export interface RedisMonitorOptions {
  redis: RedisClient
  log: Logger
  intervalMs: number
  requireDurable: boolean
  /** The data-loss markers: one per shard, so that a master failing over without its data is seen. */
  tripwireKeys: readonly string[]
  /** The keyspace layout this process runs with: a check also records it, or finds it differs. */
  layout?: Layout
  /**
   * A check slower than this counts as failed: a worker's connection queues commands while
   * Redis is down, so without it a check would wait out the whole outage. Default 5 s.
   */
  timeoutMs?: number
}

function withTimeout<T> (promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
    timer.unref()
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/**
 * Checks Redis at start, every `intervalMs`, and whenever the connection comes back (a restart
 * or failover is when data goes missing). Logs each problem and warning once, not every interval.
 */
export class RedisMonitor {
  readonly #options: RedisMonitorOptions
  readonly #tripwires: Array<{ key: string, state: TripwireState }>
  #latest: RedisCheck | null = null
  #failure: string | null = null
  #logged = new Set<string>()
  #settingsLogged = false
  #running: Promise<RedisCheck | null> | null = null
  #timer: NodeJS.Timeout | null = null
  #stopped = false

  constructor (options: RedisMonitorOptions) {
    this.#options = options
    this.#tripwires = options.tripwireKeys.map((key) => ({ key, state: createTripwireState() }))
  }

  /** The latest successful check, for logs and diagnostics. */
  get latest (): RedisCheck | null {
    return this.#latest
  }

  /** Runs the first check (resolving to it, or null if Redis could not be checked) and keeps checking. */
  start (): Promise<RedisCheck | null> {
    this.#options.redis.on('ready', this.#trigger)
    return this.check()
  }

  /** Checks now, unless a check is already running, and schedules the next one. */
  check (): Promise<RedisCheck | null> {
    if (this.#stopped) return Promise.resolve(this.#latest)
    this.#running ??= this.#run().finally(() => {
      this.#running = null
      this.#schedule()
    })
    return this.#running
  }

  /** Why the service must not accept changes, or null when Redis passed the latest check. */
  notReadyReason (): string | null {
    if (this.#failure !== null) return this.#failure
    if (this.#latest === null) return 'redis not checked yet'
    const [first, ...more] = this.#latest.problems
    if (first === undefined) return null
    return more.length === 0 ? first : `${first} (and ${more.length} more: see the log)`
  }

  /** Stops checking; waits for a check in flight so the caller can then close the connection. */
  async stop (): Promise<void> {
    this.#stopped = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    this.#options.redis.off('ready', this.#trigger)
    await this.#running
  }

  // check() does not reject (a failure becomes notReadyReason()); the catch is for the linter's sake.
  readonly #trigger = () => {
    this.check().catch(() => {})
  }

  #schedule (): void {
    if (this.#stopped) return
    if (this.#timer) clearTimeout(this.#timer)
    // A failed check (Redis frozen, say) is repeated every second, so that readiness comes back
    // as soon as Redis does, not an interval later.
    const delay = this.#failure === null ? this.#options.intervalMs : Math.min(this.#options.intervalMs, 1_000)
    this.#timer = setTimeout(this.#trigger, delay)
    this.#timer.unref()
  }

  async #run (): Promise<RedisCheck | null> {
    const { redis, log, requireDurable, timeoutMs = 5_000 } = this.#options
    try {
      const check = await withTimeout(checkRedis(redis, { requireDurable, tripwires: this.#tripwires }), timeoutMs)
      // Checked every time, not only at start: a process that started while Redis did not answer,
      // or a record changed under it, must not write rows into shards where they do not live.
      if (this.#options.layout) {
        await withTimeout(recordLayout(redis, this.#options.layout), timeoutMs).catch((error: unknown) => {
          if (!(error instanceof LayoutError)) throw error
          check.problems.unshift(error.message)
        })
      }
      if (this.#failure !== null) log.info('redis check succeeded again')
      this.#failure = null
      this.#latest = check
      this.#report(check)
      return check
    } catch (error) {
      const reason = `redis check failed: ${error instanceof Error ? error.message : String(error)}`
      if (reason !== this.#failure) log.warn(reason)
      this.#failure = reason
      return null
    }
  }

  #report (check: RedisCheck): void {
    const { log, tripwireKeys } = this.#options
    if (!this.#settingsLogged) {
      this.#settingsLogged = true
      if (check.nodes.length > 1) log.info({ redis: check.nodes }, 'redis settings (every cluster master)')
      else log.info({ redis: check.settings }, 'redis settings')
    }
    if (check.tripwire === 'created') {
      log.info({ keys: tripwireKeys }, 'created the redis data-loss marker: this Redis is new to changeflow (or lost its data before this process started)')
    }
    const current = new Set([...check.problems, ...check.warnings])
    for (const problem of check.problems) if (!this.#logged.has(problem)) log.error(problem)
    for (const warning of check.warnings) if (!this.#logged.has(warning)) log.warn(warning)
    for (const gone of this.#logged) if (!current.has(gone)) log.info(`redis check: resolved: ${gone}`)
    this.#logged = current
  }
}
