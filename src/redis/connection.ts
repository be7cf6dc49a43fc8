import { Cluster, Redis, type RedisOptions } from 'ioredis'
import type { Logger } from 'pino'

export type RedisRole = 'web' | 'worker'

/** A standalone Redis or a Redis Cluster: BullMQ and every command of ours take either. */
export type RedisClient = Redis | Cluster

/** Where Redis is: a URL, or (winning over it) the seed nodes of a Redis Cluster. */
export interface RedisTarget {
  url: string
  clusterNodes?: readonly string[]
}

function seed (node: string): { host: string, port: number } {
  const colon = node.lastIndexOf(':')
  return { host: node.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port: Number(node.slice(colon + 1)) }
}

/**
 * The web side fails fast (a Redis outage becomes a 503 and Sequin retries); workers wait out
 * an outage (`maxRetriesPerRequest: null`, which BullMQ requires for its blocking connection).
 * On a cluster, MOVED and ASK (a failover, a reshard) are followed by ioredis.
 */
export function createRedis (target: RedisTarget | string, role: RedisRole, log: Logger, purpose = ''): RedisClient {
  const { url, clusterNodes } = typeof target === 'string' ? { url: target, clusterNodes: undefined } : target
  const options: RedisOptions = {
    ...(role === 'web' ? { enableOfflineQueue: false, maxRetriesPerRequest: 1 } : { maxRetriesPerRequest: null }),
    connectionName: `changeflow-${role}${purpose ? `-${purpose}` : ''}`,
    retryStrategy: (attempt) => Math.min(attempt * 250, 2_000),
  }
  const redis: RedisClient = clusterNodes && clusterNodes.length > 0
    ? new Cluster(clusterNodes.map(seed), {
      redisOptions: options,
      enableOfflineQueue: role !== 'web',
      clusterRetryStrategy: (attempt) => Math.min(attempt * 250, 2_000),
      slotsRefreshTimeout: 2_000,
    })
    : new Redis(url, options)
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
export function waitUntilReady (redis: RedisClient, timeoutMs: number): Promise<void> {
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
