import t from 'tap'
import pino from 'pino'
import { Cluster } from 'ioredis'
import { loadConfig } from '../../src/config.ts'
import { keySlot, Layout } from '../../src/keys.ts'
import { runCli } from '../../src/cli/program.ts'
import { LayoutError, recordLayout } from '../../src/redis/layout.ts'
import { createWeb, createWorker } from '../../src/runtime/services.ts'
import { loadWorkflows } from '../../src/workflows/load.ts'
import { executions, failures, reset } from '../fixtures/jobs/_recorder.ts'
import { startRedisCluster } from '../../scripts/lib/redis-cluster.ts'
import { TOKEN, waitFor } from '../helpers/service.ts'
import { message } from '../helpers/stack.ts'

// Three masters, three shards: each shard's slot on its own master. Web and workers in this
// process, through ioredis's Cluster client.
const cluster = await startRedisCluster({ masters: 3 })
t.teardown(() => cluster.stop())
const config = loadConfig({
  REDIS_CLUSTER_NODES: cluster.addresses,
  REDIS_SHARDS: '3',
  REDIS_PREFIX: 'cf-cluster',
  SEQUIN_WEBHOOK_TOKENS: TOKEN,
  JOBS_DIR: new URL('../fixtures/jobs', import.meta.url).pathname,
  RECONCILE_INTERVAL: '200ms',
  STEP_BACKOFF: '20ms',
})
const logger = pino({ level: 'silent' })
const workflows = await loadWorkflows(config.JOBS_DIR)
const web = await createWeb({ config, logger, redisUrl: 'redis://unused', workflows, tokens: [TOKEN] })
const worker = createWorker({ config, logger, redisUrl: 'redis://unused', workflows })
const admin = new Cluster(cluster.addresses.split(',').map((node) => ({ host: '127.0.0.1', port: Number(node.split(':')[1]) })))
admin.on('error', () => {})
t.teardown(async () => {
  await worker.close()
  await web.close()
  admin.disconnect()
})
t.beforeEach(() => reset())
const layout = new Layout('cf-cluster', 3)
const post = (body: unknown) => web.app.inject({ method: 'POST', url: '/webhooks/sequin', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, payload: JSON.stringify(body) })

let lsn = 7_000_000
const change = (id: number, action = 'insert') => message('ledger', id, action, lsn++)

t.test('shards spread over the masters; a batch spans them, each change runs once, rows keep their order', async (t) => {
  const nodes = await cluster.nodes()
  const owner = (slot: number) => nodes.find((node) => node.slots.some(([from, to]) => slot >= from && slot <= to))!.port
  t.equal(new Set(layout.shards.map((keys) => owner(keySlot(keys.rows())))).size, 3, 'each shard on its own master')

  const rows = Array.from({ length: 30 }, (_, i) => 100 + i)
  const first = rows.map((id) => change(id))
  const second = rows.map((id) => change(id, 'update'))
  t.match((await post({ data: first })).json(), { accepted: 30, jobs: 30 })
  t.match((await post({ data: second })).json(), { accepted: 30 })
  t.match((await post({ data: [...first, ...second] })).json(), { accepted: 0, duplicates: 60 }, 'a redelivery is all duplicates, in every shard')
  await waitFor(() => executions.filter((e) => e.workflow === 'ledger-apply').length === 120, 15_000, 'both runs of every row, two steps each')
  for (const id of rows) {
    const steps = executions.filter((e) => e.workflow === 'ledger-apply' && e.key === String(id)).map((e) => `${e.step}@${e.lsn}`)
    const [a, b] = [first, second].map((batch) => batch.find((m) => m.record.id === id)!.metadata.commit_lsn)
    t.same(steps, [`apply@${a}`, `confirm@${a}`, `apply@${b}`, `confirm@${b}`], `row ${id} in order`)
  }
  const keysPerMaster = await Promise.all(nodes.filter((node) => node.role === 'master').map(async (node) => {
    const client = admin.nodes('master').find((candidate) => candidate.options.port === node.port)!
    return Number(await client.dbsize())
  }))
  t.ok(keysPerMaster.every((n) => n > 0), `keys on every master: ${keysPerMaster.join(', ')}`)
})

t.test('a failed row of any shard is listed by the CLI and counted by the metric; a retry moves it on', async (t) => {
  failures.set('ledger-apply/300', 1)
  failures.set('ledger-apply/301', 1)
  await post({ data: [change(300), change(301)] })
  await post({ data: [change(300, 'update'), change(301, 'update')] })
  const out: string[] = []
  const cli = async (...argv: string[]) => {
    out.length = 0
    return runCli(argv, { config, redis: admin, out: (line) => out.push(line), err: (line) => out.push(line) })
  }
  await waitFor(async () => { await cli('blocked', '--json'); return out.length === 2 }, 10_000, 'both rows blocked')
  const blocked = out.map((line) => JSON.parse(line) as { jobId: string, key: string[] })
  const metrics = (await web.app.inject({ url: '/metrics' })).body
  t.match(metrics, /^changeflow_rows_blocked\{reason="failed"\} 2$/m)
  for (const row of blocked) t.equal(await cli('retry', 'ledger-apply', row.jobId), 0, out.join('\n'))
  await waitFor(() => executions.filter((e) => ['300', '301'].includes(e.key) && e.step === 'confirm').length === 4, 10_000, 'both rows moved on')
})

t.test('the shard count of a keyspace is recorded, and another one refused', async (t) => {
  await recordLayout(admin, layout)
  await t.rejects(recordLayout(admin, new Layout('cf-cluster', 2)), LayoutError)
  await t.rejects(recordLayout(admin, new Layout('cf-cluster', 1)), { message: /keyspace \(REDIS_PREFIX cf-cluster\) of 3 shards, and REDIS_SHARDS is 1/ })
})
