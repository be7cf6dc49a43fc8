import { execFile } from 'node:child_process'
import { createServer } from 'node:net'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { startRedisServer, type LogSink, type RedisServer } from './redis-server.ts'

const run = promisify(execFile)

export interface ClusterNode {
  id: string
  port: number
  role: 'master' | 'replica'
  /** Slot ranges served (masters only). */
  slots: Array<[number, number]>
}

export interface RedisCluster {
  servers: RedisServer[]
  /** `host:port,host:port,…`: what REDIS_CLUSTER_NODES takes. */
  addresses: string
  /** The cluster as node 0 (or the first node that answers) sees it. */
  nodes (): Promise<ClusterNode[]>
  /** Moves `slots` slots from one master to another with `redis-cli --cluster reshard`, live. */
  reshard (fromPort: number, toPort: number, slots: number): Promise<void>
  /**
   * Moves one slot, live, as a reshard does (IMPORTING/MIGRATING, MIGRATE of its keys a few at a
   * time, then the slot's new owner told to every master), slowly enough that traffic meets the
   * slot half-moved. Resolves with the number of keys moved.
   */
  migrateSlot (slot: number, toPort: number, options?: { keysPerStep?: number, pauseMs?: number }): Promise<number>
  /** The master port that serves `slot`. */
  ownerOf (slot: number): Promise<number>
  /**
   * Resolves once every running node reports cluster_state:ok, knows every other node, and every
   * replica has its master link up (a replica that never synced does not fail over).
   */
  waitUntilOk (timeoutMs?: number): Promise<void>
  stop (): Promise<void>
}

function listenable (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.unref()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** A loopback port that is free, and whose cluster bus port (+10000) is free too. */
async function clusterPort (taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 25_000)
    if (taken.has(port) || taken.has(port + 10_000)) continue
    if (await listenable(port) && await listenable(port + 10_000)) {
      taken.add(port)
      taken.add(port + 10_000)
      return port
    }
  }
  throw new Error('no free port pair for a cluster node')
}

function parseNodes (text: string): ClusterNode[] {
  return text.trim().split('\n').filter(Boolean).map((line) => {
    const [id, address, flags, , , , , , ...slots] = line.split(' ')
    return {
      id: id!,
      port: Number(/:(\d+)@/.exec(address!)?.[1]),
      role: flags!.includes('master') ? 'master' : 'replica',
      slots: slots.filter((range) => !range.startsWith('[')).map((range) => {
        const [from, to = from] = range.split('-')
        return [Number(from), Number(to)] as [number, number]
      }),
    }
  })
}

/**
 * A Redis Cluster of `masters` masters (and `replicas` replicas each) on free loopback ports,
 * each node a private redis-server (no persistence unless `args` ask for it), created with
 * `redis-cli --cluster create`. Stop it at the end.
 */
export async function startRedisCluster (options: { masters?: number, replicas?: number, args?: string[], log?: (node: number) => LogSink } = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3
  const replicas = options.replicas ?? 0
  const taken = new Set<number>()
  const servers: RedisServer[] = []
  const stop = async () => { await Promise.all(servers.map((server) => server.stop())) }
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const port = await clusterPort(taken)
      servers.push(await startRedisServer(['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
        '--cluster-node-timeout', '1500', ...(options.args ?? [])], { port, log: options.log?.(i) }))
    }
    const addresses = servers.map((server) => `127.0.0.1:${server.port}`)
    await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', String(replicas), '--cluster-yes'], { timeout: 30_000 })
  } catch (error) {
    await stop()
    throw error
  }

  const ask = async <T>(use: (redis: Redis) => Promise<T>): Promise<T> => {
    let last: unknown
    for (const server of servers) {
      const redis = new Redis(server.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1_000 })
      redis.on('error', () => {})
      try {
        await redis.connect()
        return await use(redis)
      } catch (error) {
        last = error
      } finally {
        redis.disconnect()
      }
    }
    throw last
  }

  const cluster: RedisCluster = {
    servers,
    addresses: servers.map((server) => `127.0.0.1:${server.port}`).join(','),
    nodes: () => ask(async (redis) => parseNodes(String(await redis.call('CLUSTER', 'NODES')))),
    async reshard (fromPort, toPort, slots) {
      const nodes = await cluster.nodes()
      const from = nodes.find((node) => node.port === fromPort)!
      const to = nodes.find((node) => node.port === toPort)!
      await run('redis-cli', ['--cluster', 'reshard', `127.0.0.1:${toPort}`, '--cluster-from', from.id, '--cluster-to', to.id,
        '--cluster-slots', String(slots), '--cluster-yes', '--cluster-pipeline', '100'], { timeout: 120_000 })
    },
    async ownerOf (slot) {
      const node = (await cluster.nodes()).find((candidate) => candidate.role === 'master' && candidate.slots.some(([from, to]) => slot >= from && slot <= to))
      if (!node) throw new Error(`no master serves slot ${slot}`)
      return node.port
    },
    async migrateSlot (slot, toPort, { keysPerStep = 5, pauseMs = 10 } = {}) {
      const fromPort = await cluster.ownerOf(slot)
      if (fromPort === toPort) return 0
      const connect = (port: number) => {
        const redis = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 })
        redis.on('error', () => {})
        return redis
      }
      const from = connect(fromPort)
      const to = connect(toPort)
      try {
        const [fromId, toId] = await Promise.all([from.call('CLUSTER', 'MYID'), to.call('CLUSTER', 'MYID')])
        await to.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', String(fromId))
        await from.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', String(toId))
        let moved = 0
        for (;;) {
          const keys = await from.call('CLUSTER', 'GETKEYSINSLOT', slot, keysPerStep) as string[]
          if (keys.length === 0) break
          // No REPLACE: a key on both nodes would be two versions of one key (a script run
          // against half-moved keys); MIGRATE then fails with BUSYKEY, and so does the test.
          await from.call('MIGRATE', '127.0.0.1', toPort, '', 0, 5_000, 'KEYS', ...keys)
          moved += keys.length
          await new Promise((resolve) => setTimeout(resolve, pauseMs))
        }
        for (const node of (await cluster.nodes()).filter((candidate) => candidate.role === 'master')) {
          const client = connect(node.port)
          try {
            await client.call('CLUSTER', 'SETSLOT', slot, 'NODE', String(toId))
          } finally {
            client.disconnect()
          }
        }
        return moved
      } finally {
        from.disconnect()
        to.disconnect()
      }
    },
    async waitUntilOk (timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const states = await Promise.all(servers.map(async (server) => {
          const redis = new Redis(server.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 })
          redis.on('error', () => {})
          try {
            await redis.connect()
            if (!/cluster_state:ok/.test(String(await redis.call('CLUSTER', 'INFO')))) return false
            const nodes = String(await redis.call('CLUSTER', 'NODES')).trim().split('\n')
            if (nodes.length < servers.length) return false
            const replication = String(await redis.info('replication'))
            return !/role:slave/.test(replication) || /master_link_status:up/.test(replication)
          } catch {
            return null // a stopped node has no say
          } finally {
            redis.disconnect()
          }
        }))
        if (states.every((ok) => ok !== false)) return
        if (Date.now() > deadline) throw new Error(`cluster not ok after ${timeoutMs} ms: ${JSON.stringify(states)}`)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    },
    stop,
  }
  await cluster.waitUntilOk()
  return cluster
}
