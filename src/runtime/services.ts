import { Queue } from 'bullmq'
import type { FastifyInstance } from 'fastify'
import type { RedisClient } from '../redis/connection.ts'
import type { Logger } from 'pino'
import { buildApp } from '../app.ts'
import type { Config } from '../config.ts'
import { dryRun } from '../ingest/dry-run.ts'
import { createIngest } from '../ingest/ingest.ts'
import { createJobOptions } from '../ingest/job-options.ts'
import { Layout, QUARANTINE_QUEUE, type Keyspace } from '../keys.ts'
import { Metrics } from '../metrics.ts'
import { registerGauges } from '../operations/gauges.ts'
import { createRedis, waitUntilReady, type RedisTarget } from '../redis/connection.ts'
import { RedisMonitor } from '../redis/monitor.ts'
import { withScripts } from '../redis/scripts.ts'
import type { Tracing } from '../tracing/tracing.ts'
import type { Workflow } from '../workflows/define.ts'
import { registerQueues, reportForeignWork } from '../runs/orphans.ts'
import { watchForeignQueues, watchQuarantine } from './watchers.ts'
import { startHeartbeat } from '../worker/heartbeat.ts'
import { startReconciler } from '../worker/reconciler.ts'
import { startWorkers, type Workers } from '../worker/workers.ts'
import { rowKeyFields } from '../row-keys.ts'

export interface Web {
  app: FastifyInstance
  redis: RedisClient
  /** Stops accepting (503), finishes requests in flight, then closes Redis. */
  close (): Promise<void>
}

export interface WebOptions {
  config: Config
  logger: Logger
  redisUrl: string
  workflows: readonly Workflow[]
  tokens: readonly string[]
  /** Dashboard credentials; without them the dashboard is off. */
  board?: { username: string, password: string }
  /** The process's metrics, shared with its workers under `npm start`. */
  metrics?: Metrics
  /** Present when tracing is on. */
  tracing?: Tracing
}

/** The HTTP side with its Redis client: what `npm run web` runs and what tests inject into. */
export async function createWeb ({ config, logger, redisUrl, workflows, tokens, board, metrics = new Metrics(), tracing }: WebOptions): Promise<Web> {
  const target = redisTarget(config, redisUrl)
  const redis = withScripts(createRedis(target, 'web', logger))
  // The dashboard and metric scrapes read on their own connection: a slow one never queues
  // ahead of a batch being enqueued.
  const opsRedis = createRedis(target, 'web', logger, 'ops')
  const layout = new Layout(config.REDIS_PREFIX, config.REDIS_SHARDS)
  const names = workflows.map((workflow) => workflow.name)
  let closing = false
  // Readiness also means Redis is fit to hold acknowledged changes: noeviction, a primary, ...
  const monitor = redisMonitor(redis, layout, config, logger)
  const queueOf = (name: string, keys: Keyspace) => {
    const queue = new Queue(name, { connection: opsRedis, prefix: keys.bullPrefix })
    queue.on('error', (error) => logger.warn({ queue: name, err: error }, 'dashboard queue error'))
    return queue
  }
  const quarantineQueue = queueOf(QUARANTINE_QUEUE, layout.home)
  const queues = [...layout.shards.flatMap((keys) => names.map((name) => queueOf(name, keys))), quarantineQueue]
  const quarantine = watchQuarantine(quarantineQueue, config.QUARANTINE_LIMIT, config.REDIS_CHECK_INTERVAL, logger)
  // Found later (a deploy renamed a workflow): added to the metrics here, to the dashboard below.
  const addForeign: Array<(queue: Queue) => void> = [(queue) => queues.push(queue)]
  const foreign = watchForeignQueues(opsRedis, layout, names, config.REDIS_CHECK_INTERVAL, logger,
    (queue) => { for (const add of addForeign) add(queue) })
  const jobOptions = createJobOptions(workflows, config)
  const ingest = createIngest({ redis, layout, workflows, jobOptions, config, metrics, tracing })
  const release = async () => {
    quarantine.stop()
    foreign.stop()
    await monitor.stop()
    await Promise.all(queues.map((queue) => queue.close()))
    redis.disconnect()
    opsRedis.disconnect()
  }

  let app: FastifyInstance
  try {
    // A first check before Redis answers would only fail; a Redis that is down is checked on 'ready'.
    await waitUntilReady(redis, 3_000).catch(() => {})
    await monitor.start()
    registerGauges(metrics, () => queues, opsRedis, layout)
    // Whatever this release accepts is known, so that a later release that renames it finds it.
    await registerQueues(opsRedis, layout, names).catch(() => {}) // readiness reports a Redis that cannot take it
    await reportForeignWork(opsRedis, layout, names, logger)
      .catch((error: unknown) => logger.warn({ err: error }, 'could not look for work of workflows this deployment does not define'))
    await quarantine.check()
    app = await buildApp(config, {
      logger,
      metrics,
      ingest,
      // An operator's question: on the dashboard's connection, never ahead of a batch being enqueued.
      dryRun: (text) => dryRun(text, { redis: opsRedis, layout, workflows, jobOptions, config }),
      tokens,
      tracing,
      board: board && {
        queues: [...queues],
        shardOf: (queue: Queue) => (layout.shards.length > 1 ? layout.shards.findIndex((keys) => keys.bullPrefix === queue.opts.prefix) : undefined),
        ...board,
        readOnly: config.BOARD_READ_ONLY,
        onForeignQueue: (add) => { addForeign.push(add) },
      },
      warnings: quarantine.warnings,
      isClosing: () => closing,
      notReadyReason: () => {
        if (closing) return 'shutting down'
        if (redis.status !== 'ready') return `redis ${redis.status}`
        return monitor.notReadyReason()
      },
    })
    await foreign.check()
  } catch (error) {
    await release() // or the process would never exit
    throw error
  }
  return {
    app,
    redis,
    async close () {
      closing = true
      await app.close()
      await release()
    },
  }
}

export interface Worker {
  workers: Workers
  close (): Promise<void>
}

export interface WorkerOptions {
  config: Config
  logger: Logger
  redisUrl: string
  workflows: readonly Workflow[]
  metrics?: Metrics
  /** Present when tracing is on. */
  tracing?: Tracing
  /**
   * Check Redis's settings and the data-loss tripwire here too, for the log: a worker-only
   * process has no readiness to gate, and under `npm start` the web side already checks.
   */
  checkRedis?: boolean
}

/** The step runners: what `npm run worker` runs, any number of replicas against one Redis. */
export function createWorker ({ config, logger, redisUrl, workflows, metrics = new Metrics(), tracing, checkRedis = false }: WorkerOptions): Worker {
  const redis = withScripts(createRedis(redisTarget(config, redisUrl), 'worker', logger))
  const layout = new Layout(config.REDIS_PREFIX, config.REDIS_SHARDS)
  const shards = config.WORKER_SHARDS ?? layout.shards.map((_, shard) => shard)
  const workers = startWorkers(config, redis, {
    redis,
    layout,
    shards,
    workflows,
    jobOptions: createJobOptions(workflows, config),
    runTtlMs: config.DEDUP_TTL,
    dedupTtlMs: config.DEDUP_TTL,
    log: logger,
    rowKey: rowKeyFields(config),
    metrics,
    tracing,
  })
  const reconciler = startReconciler(redis, layout, config.RECONCILE_INTERVAL, config.DEDUP_TTL, logger)
  const names = [...workflows.map((workflow) => workflow.name), QUARANTINE_QUEUE]
  const heartbeat = startHeartbeat(redis, layout, shards, names, Math.min(config.RECONCILE_INTERVAL, 10_000), logger)
  reportForeignWork(redis, layout, names, logger)
    .catch((error: unknown) => logger.warn({ err: error }, 'could not look for work of workflows this deployment does not define'))
  const monitor = checkRedis ? redisMonitor(redis, layout, config, logger) : undefined
  monitor?.start().catch(() => {})
  return {
    workers,
    async close () {
      reconciler.stop()
      heartbeat.stop()
      await monitor?.stop()
      await workers.close()
      redis.disconnect()
    },
  }
}

/** REDIS_CLUSTER_NODES wins over the URL. */
export function redisTarget (config: Pick<Config, 'REDIS_CLUSTER_NODES'>, url: string): RedisTarget {
  return { url, clusterNodes: config.REDIS_CLUSTER_NODES }
}

/** Redis's settings on every master, and a data-loss marker in every shard. */
function redisMonitor (redis: RedisClient, layout: Layout, config: Config, logger: Logger): RedisMonitor {
  return new RedisMonitor({
    redis,
    log: logger,
    intervalMs: config.REDIS_CHECK_INTERVAL,
    requireDurable: config.REDIS_REQUIRE_DURABLE,
    tripwireKeys: layout.shards.map((keys) => keys.tripwire()),
    layout,
  })
}
