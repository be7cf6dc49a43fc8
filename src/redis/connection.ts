import { Redis, type RedisOptions } from 'ioredis'
import type { Logger } from 'pino'

export type RedisRole = 'web' | 'worker'

/**
 * The web side fails fast (a Redis outage becomes a 503 and Sequin retries); workers wait out
 * an outage (`maxRetriesPerRequest: null`, which BullMQ requires for its blocking connection).
 */
export function createRedis (url: string, role: RedisRole, log: Logger, purpose = ''): Redis {
  const options: RedisOptions = role === 'web'
    ? { enableOfflineQueue: false, maxRetriesPerRequest: 1 }
    : { maxRetriesPerRequest: null }
  const redis = new Redis(url, {
    ...options,
    connectionName: `changeflow-${role}${purpose ? `-${purpose}` : ''}`,
    retryStrategy: (attempt) => Math.min(attempt * 250, 2_000),
  })
  let lastError = ''
  redis.on('error', (error: Error) => {
    // ioredis reports every reconnect attempt; once per distinct error is enough.
    if (error.message === lastError) return
    lastError = error.message
    log.warn({ role, err: error }, 'redis connection error')
  })
  redis.on('ready', () => {
    if (lastError) log.info({ role }, 'redis connection restored')
    lastError = ''
  })
  return redis
}

/** Resolves once the client is ready, or rejects after `timeoutMs`. */
export function waitUntilReady (redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady)
      reject(new Error(`redis did not become ready within ${timeoutMs} ms (status ${redis.status})`))
    }, timeoutMs)
    const onReady = () => {
      clearTimeout(timer)
      resolve()
    }
    redis.once('ready', onReady)
  })
}

/** Does anything answer PING at this URL? Used to decide on the embedded Redis. */
export async function redisAnswers (url: string): Promise<boolean> {
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1_000 })
  probe.on('error', () => {})
  try {
    await probe.connect()
    return (await probe.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    probe.disconnect()
  }
}
