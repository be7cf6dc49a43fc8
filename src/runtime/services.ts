import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { buildApp } from '../app.ts'
import type { Config } from '../config.ts'
import { createIngest } from '../ingest/ingest.ts'
import { createJobOptions } from '../ingest/job-options.ts'
import { Keyspace } from '../keys.ts'
import { createRedis } from '../redis/connection.ts'
import { withScripts } from '../redis/scripts.ts'
import type { Workflow } from '../workflows/define.ts'
import { startReconciler } from '../worker/reconciler.ts'
import { startWorkers, type Workers } from '../worker/workers.ts'

export interface Web {
  app: FastifyInstance
  redis: Redis
  /** Stops accepting (503), finishes requests in flight, then closes Redis. */
  close (): Promise<void>
}

export interface WebOptions {
  config: Config
  logger: Logger
  redisUrl: string
  workflows: readonly Workflow[]
  tokens: readonly string[]
}

/** The HTTP side with its Redis client: what `npm run web` runs and what tests inject into. */
export async function createWeb ({ config, logger, redisUrl, workflows, tokens }: WebOptions): Promise<Web> {
  const redis = withScripts(createRedis(redisUrl, 'web', logger))
  const keys = new Keyspace(config.REDIS_PREFIX)
  let closing = false
  const ingest = createIngest({ redis, keys, workflows, jobOptions: createJobOptions(workflows, config), config })
  const app = await buildApp(config, {
    logger,
    ingest,
    tokens,
    notReadyReason: () => {
      if (closing) return 'shutting down'
      if (redis.status !== 'ready') return `redis ${redis.status}`
      return null
    },
  })
  return {
    app,
    redis,
    async close () {
      closing = true
      await app.close()
      redis.disconnect()
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
}

/** The step runners: what `npm run worker` runs, any number of replicas against one Redis. */
export function createWorker ({ config, logger, redisUrl, workflows }: WorkerOptions): Worker {
  const redis = withScripts(createRedis(redisUrl, 'worker', logger))
  const keys = new Keyspace(config.REDIS_PREFIX)
  const workers = startWorkers(config, redis, {
    redis,
    keys,
    workflows,
    jobOptions: createJobOptions(workflows, config),
    runTtlMs: config.DEDUP_TTL,
    dedupTtlMs: config.DEDUP_TTL,
    log: logger,
  })
  const reconciler = startReconciler(redis, keys, config.RECONCILE_INTERVAL, logger)
  return {
    workers,
    async close () {
      reconciler.stop()
      await workers.close()
      redis.disconnect()
    },
  }
}
