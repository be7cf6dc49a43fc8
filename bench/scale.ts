import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { Queue } from 'bullmq'
import { Cluster, Redis } from 'ioredis'
import { loadConfig, projectRoot } from '../src/config.ts'
import { Layout } from '../src/keys.ts'
import { Metrics } from '../src/metrics.ts'
import { createWeb } from '../src/runtime/services.ts'
import { loadWorkflows } from '../src/workflows/load.ts'
import { startRedisCluster } from '../scripts/lib/redis-cluster.ts'
import { startRedisServer } from '../scripts/lib/redis-server.ts'
import { TOKEN, type Context } from './lib/context.ts'
import os from 'node:os'
import { inParallel, withTimeout } from './lib/measure.ts'
import { table } from './lib/table.ts'
import { mostlyDistinctRows, seeded, toBatches } from './lib/workload.ts'
import { SOURCE_NODE_ARGS } from '../scripts/lib/source-node.ts'

const WORKFLOW = 'bench-ordered'
const jobsDir = fileURLToPath(new URL('jobs/', import.meta.url))

interface Topology {
  name: string
  shards: number
  env: Record<string, string>
  /** Every master, to read its CPU from. */
  masters: () => Promise<Redis[]>
  /** A client for the keyspace (counts). */
  client: () => Redis | Cluster
  stop: () => Promise<void>
}

async function oneRedis (): Promise<Topology> {
  const server = await startRedisServer(['--maxmemory-policy', 'noeviction'])
  const node = new Redis(server.url, { maxRetriesPerRequest: 1 })
  return {
    name: 'one Redis',
    shards: 1,
    env: { REDIS_URL: server.url },
    masters: async () => [node],
    client: () => node,
    async stop () {
      node.disconnect()
      await server.stop()
    },
  }
}

async function threeMasters (): Promise<Topology> {
  const cluster = await startRedisCluster({ masters: 3, args: ['--maxmemory-policy', 'noeviction'] })
  const masterPorts = (await cluster.nodes()).filter((node) => node.role === 'master').map((node) => node.port)
  const nodes = masterPorts.map((port) => new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 }))
  const client = new Cluster(masterPorts.map((port) => ({ host: '127.0.0.1', port })))
  return {
    name: 'Redis Cluster, 3 masters (3 shards)',
    shards: 3,
    env: { REDIS_CLUSTER_NODES: cluster.addresses, REDIS_SHARDS: '3' },
    masters: async () => nodes,
    client: () => client,
    async stop () {
      client.disconnect()
      for (const node of nodes) node.disconnect()
      await cluster.stop()
    },
  }
}

/** CPU seconds (user + system) Redis spent so far, per master. */
async function cpu (masters: readonly Redis[]): Promise<number[]> {
  return Promise.all(masters.map(async (node) => {
    const info = await node.info('cpu')
    const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0)
    return field('used_cpu_user') + field('used_cpu_sys')
  }))
}

/** A `npm run worker` process (run directly), resolving once it started its workers. */
function spawnWorker (env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...SOURCE_NODE_ARGS, `${projectRoot}src/main/worker.ts`], {
    cwd: projectRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  return new Promise((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk
      if (output.includes('"workers started"')) {
        child.stdout!.removeAllListeners('data').resume()
        resolve(child)
      }
    })
    child.stderr!.resume()
    child.once('exit', (code) => reject(new Error(`a worker process exited (${code}) before starting: ${output.slice(-500)}`)))
  })
}

async function stop (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}

/**
 * Part 4: end to end, from the webhook to every run's last step, with 1, 2 and 4 worker
 * processes, on one Redis and on a three-master cluster (private redis-servers this part starts):
 * changes per second, and the Redis CPU each change cost on each master.
 */
export async function benchScale (ctx: Context): Promise<string> {
  const { settings } = ctx
  const changes = Math.max(500, Math.round(settings.changes / 2))
  const workflows = await loadWorkflows(jobsDir)
  const rows: string[][] = []
  for (const start of [oneRedis, threeMasters]) {
    const topology = await start()
    try {
      for (const processes of [1, 2, 4]) {
        const prefix = `s-${randomBytes(4).toString('hex')}`
        const env: Record<string, string> = { ...topology.env, REDIS_PREFIX: prefix, JOBS_DIR: jobsDir, SEQUIN_WEBHOOK_TOKENS: TOKEN, WORKER_CONCURRENCY: String(settings.workerConcurrency), LOG_LEVEL: 'silent' }
        const config = loadConfig(env)
        const web = await createWeb({ config, logger: ctx.logger, redisUrl: env.REDIS_URL ?? 'redis://unused', workflows, tokens: [TOKEN], metrics: new Metrics({ defaultMetrics: false }) })
        const workers = await Promise.all(Array.from({ length: processes }, () => spawnWorker({ ...env, LOG_LEVEL: 'info' })))
        const layout = new Layout(prefix, topology.shards)
        const queues = layout.shards.map((keys) => new Queue(WORKFLOW, { connection: topology.client(), prefix: keys.bullPrefix }))
        try {
          const messages = mostlyDistinctRows('bench_ordered', changes, 0, seeded(7))
          const masters = await topology.masters()
          const before = await cpu(masters)
          const started = performance.now()
          await inParallel(toBatches(messages, settings.batchSize), settings.inFlight, async (batch) => {
            const response = await web.app.inject({ method: 'POST', url: '/webhooks/sequin', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, payload: batch.body })
            if (response.statusCode !== 200) throw new Error(`ingest answered ${response.statusCode}: ${response.body}`)
          })
          // A run's next step is queued before its current one completes: empty queues are every run done.
          await withTimeout((async () => {
            for (;;) {
              const counts = await Promise.all(queues.map((queue) => queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized')))
              if (counts.every((count) => Object.values(count).every((n) => n === 0))) return
              await new Promise((resolve) => setTimeout(resolve, 50))
            }
          })(), settings.timeoutMs, 'every run to finish')
          const seconds = (performance.now() - started) / 1000
          const spent = (await cpu(masters)).map((after, i) => after - before[i]!)
          rows.push([
            topology.name, String(processes), Math.round(changes / seconds).toLocaleString('en-US'), Math.round((changes * 2) / seconds).toLocaleString('en-US'),
            spent.map((secondsOfCpu) => Math.round((secondsOfCpu * 1e6) / changes)).join(' / '),
          ])
          process.stderr.write(`  ${topology.name}, ${processes} worker processes: ${(changes / seconds).toFixed(0)} changes/s\n`)
        } finally {
          await Promise.all(workers.map(stop))
          await Promise.all(queues.map((queue) => queue.close()))
          await web.close()
          for (const master of await topology.masters()) await master.flushall() // servers this part started
        }
      }
    } finally {
      await topology.stop()
    }
  }
  return table(['Redis', 'worker processes', 'changes/s end to end', 'steps/s', 'Redis CPU µs per change, per master'], rows) +
    `\n\n${changes} changes on rows of their own through the webhook (in this process, ${settings.inFlight} batches of ${settings.batchSize} in flight), ` +
    `two no-op steps each, ordered by row; WORKER_CONCURRENCY ${settings.workerConcurrency} per worker process. Everything (web, workers, every ` +
    `redis-server) shares this machine's ${os.cpus().length} cores.`
}
