import { Cluster, Redis } from 'ioredis'
import t from 'tap'
import { changeId } from '../../src/ingest/identity.ts'
import { keySlot, Layout } from '../../src/keys.ts'
import type { SequinMetadata } from '../../src/sequin/message.ts'
import { reportScenario } from '../helpers/fault-report.ts'
import { acknowledged, completedRuns, figures, proofLine, spawnWorker, stopWorker } from '../helpers/proof.ts'
import { startRedisCluster, type RedisCluster } from '../../scripts/lib/redis-cluster.ts'
import { liveProgress, simulateSequin, type SimulatedMessage } from '../../src/simulate/sequin.ts'
import { REDIS_URL, waitFor } from '../helpers/service.ts'
import { suiteLog } from '../helpers/suite-logs.ts'
import { suiteSecret } from '../helpers/suite-secrets.ts'
import { ownPrefix, startWebProcess } from '../helpers/web-processes.ts'

// changeflow on a three-master Redis Cluster with three shards (a shard's slot on each master):
// two web and two worker processes behind the Sequin simulator. The proof workflows record their
// effects in the suite's standalone Redis (REDIS_URL), so the figures survive what the cluster
// goes through; changeflow itself reaches only the cluster (REDIS_CLUSTER_NODES wins).
const TOKEN = suiteSecret('cluster webhook token', 'cf-fault-webhook-token-Cluster-3mQ8')
// Four clusters, each created, loaded, broken and drained: about 100 s on 2 cores.
t.setTimeout(300_000)
const SHARDS = 3

interface Deployment {
  prefix: string
  effects: Redis
  urls: string[]
  workers: Array<ReturnType<typeof spawnWorker>>
  workerEnv: Record<string, string>
}

async function deploy (t: Parameters<typeof ownPrefix>[0], cluster: RedisCluster, env: Record<string, string> = {}): Promise<Deployment> {
  const { prefix, redis: effects } = ownPrefix(t, REDIS_URL)
  const common = { REDIS_URL, REDIS_CLUSTER_NODES: cluster.addresses, REDIS_SHARDS: String(SHARDS), REDIS_PREFIX: prefix, ...env }
  const webs = [await startWebProcess(t, 'cluster-web', { ...common, SEQUIN_WEBHOOK_TOKENS: TOKEN }), await startWebProcess(t, 'cluster-web', { ...common, SEQUIN_WEBHOOK_TOKENS: TOKEN })]
  const workerEnv = { ...common, PROOF_MAX_LATENCY_MS: '10' }
  const workers = [spawnWorker(workerEnv, 'cluster-worker'), spawnWorker(workerEnv, 'cluster-worker')]
  t.teardown(() => Promise.all(workers.map((worker) => stopWorker(worker, 'SIGKILL'))))
  return { prefix, effects, urls: webs.map((web) => web.url), workers, workerEnv }
}

const rowsOf = (messages: readonly SimulatedMessage[]) => [...new Set(messages.map((message) => message.row))]

/** Keys per master, counted on each master directly. */
async function keysPerMaster (cluster: RedisCluster): Promise<number[]> {
  const masters = (await cluster.nodes()).filter((node) => node.role === 'master')
  return Promise.all(masters.map(async (node) => {
    const redis = new Redis(node.port, '127.0.0.1', { maxRetriesPerRequest: 1 })
    redis.on('error', () => {})
    try {
      return await redis.dbsize()
    } finally {
      redis.disconnect()
    }
  }))
}

t.test('a worker SIGKILLed mid-run on a three-master cluster: nothing lost, doubled or reordered; keys on every master', async (t) => {
  const cluster = await startRedisCluster({ masters: 3, log: (node) => suiteLog(`redis-cluster-${node}`) })
  t.teardown(() => cluster.stop())
  const { prefix, effects, urls, workers, workerEnv } = await deploy(t, cluster)
  const live = liveProgress()
  const simulation = simulateSequin({ url: urls, token: TOKEN, table: 'accounts', rows: 60, changesPerRow: 6, firstRow: 70_000, batchSize: 10, concurrency: 6, immediateRetryMs: 25, live, timeoutMs: 90_000 })
  await waitFor(() => live.acked >= 100, 30_000, 'traffic')
  await stopWorker(workers.shift()!, 'SIGKILL')
  workers.push(spawnWorker(workerEnv, 'cluster-worker'))
  const sim = await simulation
  await waitFor(async () => await completedRuns(effects, prefix, 'proof-ordered', rowsOf(sim.messages)) === sim.messages.length, 60_000, 'every run')
  await new Promise((resolve) => setTimeout(resolve, 300))
  const f = await figures(effects, prefix, 'proof-ordered', sim.messages)
  const perMaster = await keysPerMaster(cluster)
  reportScenario(t, proofLine('Redis Cluster, 3 masters and 3 shards: a worker SIGKILLed mid-run (two webs, two workers)', f, acknowledged(sim.messages),
    `keys per master ${perMaster.join(' / ')}; ${sim.requests} requests, ${sim.redeliveries} redeliveries`))
  t.match(f, { changes: 360, runsCompleted: 360, lost: 0, duplicatedEffects: 0, orderViolations: 0 })
  t.ok(perMaster.every((n) => n > 0), `keys on every master (${perMaster.join(', ')})`)
})

t.test("a shard's slot moved to another master while traffic flows: nothing lost, twice or reordered", async (t) => {
  const cluster = await startRedisCluster({ masters: 3, log: (node) => suiteLog(`redis-cluster-${node}`) })
  t.teardown(() => cluster.stop())
  const { prefix, effects, urls } = await deploy(t, cluster)
  const layout = new Layout(prefix, SHARDS)
  const live = liveProgress()
  const simulation = simulateSequin({ url: urls, token: TOKEN, table: 'accounts', rows: 60, changesPerRow: 8, firstRow: 80_000, batchSize: 10, concurrency: 6, immediateRetryMs: 25, live, timeoutMs: 120_000 })
  await waitFor(() => live.acked >= 100, 30_000, 'traffic')
  // First `redis-cli --cluster reshard` moves every slot of shard 0's master (its slot among
  // them) to another master; then the other shards' slots move one by one, a few keys at a time,
  // so that scripts meet them half-moved.
  const masters = (await cluster.nodes()).filter((node) => node.role === 'master').map((node) => node.port).sort()
  const next = (port: number) => masters[(masters.indexOf(port) + 1) % masters.length]!
  const first = await cluster.ownerOf(keySlot(layout.home.rows()))
  const firstSlots = (await cluster.nodes()).find((node) => node.port === first)!.slots.reduce((sum, [from, to]) => sum + to - from + 1, 0)
  await cluster.reshard(first, next(first), firstSlots)
  // A master left without slots becomes a replica (cluster-allow-replica-migration): the rest
  // move between the masters that hold slots now.
  const holders = (await cluster.nodes()).filter((node) => node.role === 'master' && node.slots.length > 0).map((node) => node.port).sort()
  let moved = 0
  for (const keys of layout.shards.slice(1)) {
    const slot = keySlot(keys.rows())
    const owner = await cluster.ownerOf(slot)
    moved += await cluster.migrateSlot(slot, holders[(holders.indexOf(owner) + 1) % holders.length]!, { keysPerStep: 5, pauseMs: 10 })
  }
  const sim = await simulation
  await waitFor(async () => await completedRuns(effects, prefix, 'proof-ordered', rowsOf(sim.messages)) === sim.messages.length, 60_000, 'every run')
  await new Promise((resolve) => setTimeout(resolve, 300))
  const f = await figures(effects, prefix, 'proof-ordered', sim.messages)
  const failed = Object.entries(sim.statuses).filter(([status]) => status !== '200').map(([status, n]) => `${n}×${status}`).join(' ') || 'none'
  reportScenario(t, proofLine('Redis Cluster: every shard\'s slot moved to another master under traffic (redis-cli --cluster reshard, then key by key)', f, acknowledged(sim.messages),
    `${firstSlots} slots resharded with redis-cli, then ${moved} keys migrated a few at a time over ${layout.shards.length - 1} more slots; non-2xx answers ${failed}, all retried by the simulator`))
  t.match(f, { changes: 480, runsCompleted: 480, lost: 0, duplicatedEffects: 0, orderViolations: 0 })
  t.ok(moved > 0, 'keys moved with their slots')
})

/** Acknowledged changes whose dedup hash is gone from the cluster: acknowledged, then lost. */
async function lostAcknowledged (cluster: RedisCluster, layout: Layout, messages: readonly SimulatedMessage[]): Promise<number> {
  const redis = new Cluster(cluster.addresses.split(',').map((node) => ({ host: '127.0.0.1', port: Number(node.split(':')[1]) })))
  redis.on('error', () => {})
  try {
    let lost = 0
    for (const message of messages.filter((m) => m.acked)) {
      const metadata = message.body.metadata as SequinMetadata
      const id = changeId(metadata)
      // The change's runs went to its row's shard (ordered proof workflow: the primary-key row).
      const found = await Promise.all(layout.shards.map((keys) => redis.exists(keys.seen(id))))
      if (found.every((n) => n === 0)) lost++
    }
    return lost
  } finally {
    redis.disconnect()
  }
}

for (const waitReplicas of [1, 0]) {
  t.test(`a master SIGKILLed on a cluster with replicas, REDIS_WAIT_REPLICAS=${waitReplicas}: the service recovers on its own`, async (t) => {
    const cluster = await startRedisCluster({ masters: 3, replicas: 1, log: (node) => suiteLog(`redis-cluster-${node}`) })
    t.teardown(() => cluster.stop())
    const env: Record<string, string> = waitReplicas > 0 ? { REDIS_WAIT_REPLICAS: String(waitReplicas), REDIS_WAIT_TIMEOUT: '500ms' } : {}
    const { prefix, effects, urls } = await deploy(t, cluster, { ...env, ENQUEUE_TIMEOUT: '2s' })
    const layout = new Layout(prefix, SHARDS)
    const live = liveProgress()
    const simulation = simulateSequin({ url: urls, token: TOKEN, table: 'accounts', rows: 60, changesPerRow: 6, firstRow: 90_000 + waitReplicas * 1_000, batchSize: 10, concurrency: 6, immediateRetryMs: 25, live, timeoutMs: 120_000 })
    await waitFor(() => live.acked >= 100, 30_000, 'traffic')
    // The master of shard 0's slot dies without a word; its replica takes over after the node timeout.
    const victim = await cluster.ownerOf(keySlot(layout.home.rows()))
    const server = cluster.servers.find((candidate) => candidate.port === victim)!
    const killedAt = Date.now()
    await server.kill('SIGKILL')
    await waitFor(async () => (await cluster.ownerOf(keySlot(layout.home.rows()))) !== victim, 20_000, 'the replica to take over')
    const failoverMs = Date.now() - killedAt
    // The orchestrator restarts the dead node: it rejoins as the new master's replica, and with
    // REDIS_WAIT_REPLICAS=1 that shard's writes can be confirmed again (until then they are refused).
    await server.restart()
    await cluster.waitUntilOk()
    const sim = await simulation
    const lost = await lostAcknowledged(cluster, layout, sim.messages)
    // Runs: every acknowledged change whose writes survived runs to completion.
    await waitFor(async () => await completedRuns(effects, prefix, 'proof-ordered', rowsOf(sim.messages)) >= acknowledged(sim.messages) - lost, 60_000, 'every surviving run')
    await new Promise((resolve) => setTimeout(resolve, 300))
    const f = await figures(effects, prefix, 'proof-ordered', sim.messages)
    const failed = Object.entries(sim.statuses).filter(([status]) => status !== '200').map(([status, n]) => `${n}×${status}`).join(' ') || 'none'
    reportScenario(t, proofLine(`Redis Cluster with replicas: a master SIGKILLed, REDIS_WAIT_REPLICAS=${waitReplicas}`, f, acknowledged(sim.messages),
      `acknowledged changes lost in the failover: ${lost}; replica took over in ${(failoverMs / 1000).toFixed(1)} s, the dead node rejoined as its replica; ` +
      `non-2xx answers ${failed}`))
    t.equal(acknowledged(sim.messages), sim.messages.length, 'every change acknowledged in the end: the service recovered')
    if (waitReplicas > 0) t.equal(lost, 0, 'no acknowledged change lost: each was on a replica before its 2xx')
    t.equal(f.duplicatedEffects, 0)
    t.equal(f.orderViolations, 0)
  })
}
