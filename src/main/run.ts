import { join } from 'node:path'
import closeWithGrace from 'close-with-grace'
import type { Logger } from 'pino'
import { ConfigError, DEFAULT_REDIS_URL as DEFAULT_REDIS, loadConfig, type Config } from '../config.ts'
import { createLogger } from '../logger.ts'
import { Layout } from '../keys.ts'
import { createRedis, redisAnswers, waitUntilReady } from '../redis/connection.ts'
import { LayoutError, recordLayout } from '../redis/layout.ts'
import { RedisNotFoundError, startEmbeddedRedis, type EmbeddedRedis } from '../redis/embedded.ts'
import { Metrics } from '../metrics.ts'
import { createWeb, createWorker, redisTarget } from '../runtime/services.ts'
import { startMetricsHttp } from '../runtime/metrics-http.ts'
import { boardBanner, resolveBoardCredentials } from '../runtime/board-credentials.ts'
import { resolveTokens, tokenBanner } from '../runtime/tokens.ts'
import { startTracing, type Tracing } from '../tracing/tracing.ts'
import { loadWorkflows, WorkflowLoadError } from '../workflows/load.ts'
import { preflight } from './preflight.ts'

export type Role = 'all' | 'web' | 'worker'

/** The only place that touches the process: environment, signals, exit codes, listen. */
export async function run (role: Role): Promise<void> {
  let config
  try {
    config = loadConfig(process.env)
    preflight(config, role)
  } catch (error) {
    return fail(error)
  }
  const logger = createLogger(config)
  const metrics = new Metrics()
  const closers: Array<() => Promise<void>> = []
  let embedded: EmbeddedRedis | undefined
  let tracing: Tracing | undefined

  try {
    tracing = await startTracing(config, logger)
    const workflows = await loadWorkflows(config.JOBS_DIR)
    logger.info({ jobsDir: config.JOBS_DIR, workflows: workflows.map((workflow) => workflow.name) }, 'workflows loaded')

    let redisUrl = config.REDIS_URL
    if (!redisUrl && !config.REDIS_CLUSTER_NODES) {
      if (await redisAnswers(DEFAULT_REDIS)) redisUrl = DEFAULT_REDIS
      else if (role === 'all' && config.EMBEDDED_REDIS) {
        embedded = await startEmbeddedRedis(join(config.DATA_DIR, 'redis'), process.env.PATH ?? '', logger)
        redisUrl = embedded.url
      } else {
        throw new ConfigError('REDIS_URL is not set and nothing answers on 127.0.0.1:6379. Separate web and worker processes must share one Redis: set REDIS_URL for both (npm start alone can run a private one).')
      }
    }

    await checkLayout(config, redisUrl ?? DEFAULT_REDIS, logger)
    redisUrl ??= DEFAULT_REDIS

    if (role !== 'worker') {
      const { tokens, generatedFile } = await resolveTokens(config)
      const credentials = await resolveBoardCredentials(config)
      if (!credentials.enabled) logger.warn(credentials.reason)
      const web = await createWeb({ config, logger, redisUrl, workflows, tokens, metrics, tracing, board: credentials.enabled ? credentials : undefined })
      closers.push(web.close)
      await web.app.listen({ host: config.HOST, port: config.PORT })
      if (generatedFile) process.stderr.write(tokenBanner(tokens[0]!, generatedFile, config.PORT))
      if (credentials.enabled) process.stderr.write(`${boardBanner(credentials, config.PORT)}\n`)
    }
    if (role !== 'web') {
      const worker = createWorker({ config, logger, redisUrl, workflows, metrics, tracing, checkRedis: role === 'worker' })
      closers.unshift(worker.close)
      logger.info({ concurrency: config.WORKER_CONCURRENCY }, 'workers started')
    }
    // Any role: the process's one registry (web and workers share it under npm start).
    if (config.METRICS_PORT !== undefined) {
      const http = await startMetricsHttp(config, metrics, logger, config.METRICS_PORT)
      closers.push(() => http.close())
    }
  } catch (error) {
    for (const close of closers) await close().catch(() => {})
    await embedded?.stop()
    await tracing?.shutdown()
    return fail(error)
  }

  // At once and together: the web stops accepting (503 to new requests, in-flight ones finish)
  // and workers stop taking steps and finish their active ones. Past SHUTDOWN_GRACE the process
  // exits anyway and stall recovery re-runs what was cut short.
  closeWithGrace({ delay: config.SHUTDOWN_GRACE, logger }, async ({ signal, err }) => {
    if (err) logger.error({ err }, 'shutting down after an error')
    else logger.info({ signal }, 'shutting down')
    await Promise.all(closers.map((close) => close()))
    await embedded?.stop()
    // Last: the spans of the steps and requests that just finished go out too.
    await tracing?.shutdown()
    logger.info('stopped')
    // pino writes asynchronously; written out in order before close-with-grace exits the process.
    await new Promise<void>((resolve) => logger.flush(() => resolve()))
  })
}

function fail (error: unknown): void {
  const known = error instanceof ConfigError || error instanceof WorkflowLoadError || error instanceof RedisNotFoundError || error instanceof LayoutError
  process.stderr.write(`changeflow cannot start: ${known ? (error as Error).message : (error as Error)?.stack ?? String(error)}\n`)
  process.exitCode = 1
}

/**
 * Records the keyspace's shard count on first start, and refuses another. Redis may not answer
 * yet (it starts alongside): then the process starts, and the next start checks.
 */
async function checkLayout (config: Config, url: string, logger: Logger): Promise<void> {
  const redis = createRedis(redisTarget(config, url), 'web', logger, 'layout')
  try {
    await waitUntilReady(redis, 5_000)
    await recordLayout(redis, new Layout(config.REDIS_PREFIX, config.REDIS_SHARDS))
  } catch (error) {
    if (error instanceof LayoutError) throw error
    logger.warn({ err: error }, 'could not check the keyspace layout in Redis now; it is checked at the next start')
  } finally {
    redis.disconnect()
  }
}
