import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import pino, { type Logger } from 'pino'
import { loadConfig, type Config } from '../../src/config.ts'
import { createLogger } from '../../src/logger.ts'
import { Metrics } from '../../src/metrics.ts'
import { tripwireKey } from '../../src/redis/tripwire.ts'
import { createWeb, createWorker, type Web, type Worker } from '../../src/runtime/services.ts'
import type { Workflow } from '../../src/workflows/define.ts'
import { loadWorkflows } from '../../src/workflows/load.ts'
import type { Settings } from './settings.ts'

export const TOKEN = 'bench-token-0123456789abcdef'
const jobsDir = fileURLToPath(new URL('../jobs/', import.meta.url))

/**
 * One benchmark run: a key prefix no one else uses (`{b-<random>}`, like the tests' `t-`), the
 * config and workflows every scenario shares, and a client to count and clean up with.
 */
export interface Context {
  settings: Settings
  prefix: string
  config: Config
  logger: Logger
  workflows: readonly Workflow[]
  redis: Redis
  workflow (name: string): Workflow
  /**
   * changeflow's web side, as `npm run web` builds it (no listen: the caller decides). Pass the
   * part's `Metrics` to the workers too, as `npm start` shares one (a registry takes each name once).
   */
  web (metrics: Metrics): Promise<Web>
  /** changeflow's workers for the given workflows only, so that idle queues cost nothing. */
  worker (workflows: readonly Workflow[], metrics: Metrics): Worker
  /** Deletes this run's keys between measurements, except the web side's data-loss marker. */
  clear (): Promise<void>
  /** Deletes every key of this run and disconnects. */
  close (): Promise<void>
}

export async function openContext (settings: Settings): Promise<Context> {
  // As long as the default REDIS_PREFIX (`changeflow`): key names weigh in the memory figures.
  const prefix = `b-${randomBytes(4).toString('hex')}`
  const config = loadConfig({
    REDIS_PREFIX: prefix,
    SEQUIN_WEBHOOK_TOKENS: TOKEN,
    JOBS_DIR: jobsDir,
    LOG_LEVEL: settings.logLevel,
    WORKER_CONCURRENCY: String(settings.workerConcurrency),
  })
  const logger = settings.logLevel === 'silent'
    ? pino({ level: 'silent' })
    // Asynchronous, like the stdout stream pino writes to by default under npm start.
    : createLogger(config, pino.destination({ dest: '/dev/null', sync: false }))
  const workflows = await loadWorkflows(config.JOBS_DIR)
  const redis = new Redis(settings.redisUrl, { maxRetriesPerRequest: 1, connectionName: 'changeflow-bench' })
  redis.on('error', () => {}) // the first command reports it, with a clearer message
  const pattern = `{${prefix}}*`
  // The web side took the marker as it started; were it deleted, its next check would report data loss.
  const keep = tripwireKey(prefix)

  const deleteKeys = async (except?: string) => {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 2000)
      const doomed = keys.filter((key) => key !== except)
      if (doomed.length > 0) await redis.del(...doomed)
      cursor = next
    } while (cursor !== '0')
  }

  return {
    settings,
    prefix,
    config,
    logger,
    workflows,
    redis,
    workflow (name) {
      const found = workflows.find((workflow) => workflow.name === name)
      if (!found) throw new Error(`no workflow ${name} in ${jobsDir}`)
      return found
    },
    web: (metrics) => createWeb({ config, logger, redisUrl: settings.redisUrl, workflows, tokens: [TOKEN], metrics }),
    worker: (only, metrics) => createWorker({ config, logger, redisUrl: settings.redisUrl, workflows: only, metrics }),
    clear: () => deleteKeys(keep),
    async close () {
      if (redis.status === 'ready') await deleteKeys()
      redis.disconnect()
    },
  }
}
