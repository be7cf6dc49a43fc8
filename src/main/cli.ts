import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { ConfigError, DEFAULT_REDIS_URL as DEFAULT_REDIS, loadConfig } from '../config.ts'
import { runCli } from '../operations/cli.ts'

/** The operator CLI: the process side only (environment, Redis client, exit code); see operations/cli.ts. */
async function main (): Promise<number> {
  let config
  try {
    config = loadConfig(process.env)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`error: ${error.message}\n`)
    return 1
  }
  // Lazy, so help and usage errors need no Redis; an unreachable Redis ends the connection after a
  // few attempts, so commands fail with its error instead of waiting (BullMQ waits for 'ready' or 'end').
  const options: RedisOptions = {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 5_000,
    connectionName: 'changeflow-cli',
    retryStrategy: (attempt) => (attempt > 2 ? null : attempt * 250),
  }
  const nodes = config.REDIS_CLUSTER_NODES?.map((node) => ({ host: node.slice(0, node.lastIndexOf(':')), port: Number(node.slice(node.lastIndexOf(':') + 1)) }))
  const redis = nodes
    ? new Cluster(nodes, { lazyConnect: true, redisOptions: options, clusterRetryStrategy: (attempt) => (attempt > 2 ? null : attempt * 250) })
    : new Redis(config.REDIS_URL ?? DEFAULT_REDIS, options)
  // Connection errors reach the command that needed Redis, which reports them; no unhandled event.
  redis.on('error', () => {})
  try {
    return await runCli(process.argv.slice(2), {
      config,
      redis,
      out: (line) => process.stdout.write(`${line}\n`),
      err: (line) => process.stderr.write(`${line}\n`),
    })
  } finally {
    redis.disconnect()
  }
}

process.exitCode = await main()
