import { Queue } from 'bullmq'
import t from 'tap'
import { changeflow, envOf } from '../helpers/changeflow.ts'
import { cliOf, startService, waitFor } from '../helpers/service.ts'

const service = await startService({ workers: true })
t.teardown(() => service.close())
const env = { ...envOf(service), METRICS_TOKEN: 'scrape-secret-123', REDIS_URL: service.redisUrl.replace('redis://', 'redis://ops:hunter2@') }
// The password above is not what the test Redis wants: the in-process runs use the service's client.
const doctor = (extra: Record<string, string> = {}) => cliOf({ redis: service.redis }, { env: { ...env, ...extra } })
await waitFor(async () => (await service.redis.exists(`{${service.config.REDIS_PREFIX}}:_cf:tripwire`)) === 1, 5_000, 'the tripwire')

t.test('a healthy service: exit 0, the Redis, the workflows and the Sequin settings; secrets redacted', async (t) => {
  const result = await doctor()('doctor', '--json', '--url', 'https://changeflow.example.com')
  t.equal(result.code, 0, result.stdout)
  const diagnosis = JSON.parse(result.stdout)
  t.match(diagnosis, { ok: true, problems: [], config: { valid: true } })
  t.equal(diagnosis.config.set.SEQUIN_WEBHOOK_TOKENS, '[1 redacted]')
  t.equal(diagnosis.config.set.METRICS_TOKEN, '[redacted]')
  t.match(diagnosis.config.set.REDIS_URL, /^redis:\/\/\[redacted\]@127\.0\.0\.1:\d+$/)
  t.notMatch(result.stdout, /hunter2|scrape-secret-123|test-token-0123456789/, 'no secret printed')
  t.match(diagnosis.redis, { reachable: true, nodes: [{ settings: { role: 'master', maxmemoryPolicy: 'noeviction', version: /^\d+\.\d+/ } }] })
  t.match(diagnosis.redis.tripwires, [{ shard: 0, createdAt: /^\d{4}-/ }])
  t.match(diagnosis.redis.layout, { recorded: 1, configured: 1, shards: [{ shard: 0, tag: service.config.REDIS_PREFIX }] })
  t.match(diagnosis.workflows.find((w: { name: string }) => w.name === 'order-flow'), { table: 'public.orders', on: ['update'], steps: ['one', 'two', 'three'], ordered: true })
  t.match(diagnosis.sequin, { url: 'https://changeflow.example.com', path: '/webhooks/sequin', batchSize: 100 })
  t.ok(diagnosis.sequin.tables.includes('public.orders') && diagnosis.sequin.tables.includes('public.ledger'))
  t.match(diagnosis.sequin.yaml, /url: "https:\/\/changeflow\.example\.com"[\s\S]*table: "public\.orders"\n {4}batch_size: 100/)
})

t.test('problems exit 1: durability required and missing, work no worker runs, an invalid configuration', async (t) => {
  // A queue of a workflow no JOBS_DIR defines (renamed away), holding work.
  const prefix = `{${service.config.REDIS_PREFIX}}`
  await service.redis.sadd(`${prefix}:_cf:queues`, 'renamed-away')
  const old = new Queue('renamed-away', { connection: service.redis, prefix })
  t.teardown(() => old.close())
  await old.add('step', {})
  const appendonly = (await service.redis.config('GET', 'appendonly') as string[])[1]
  const result = await doctor({ REDIS_REQUIRE_DURABLE: 'true' })('doctor')
  t.equal(result.code, 1)
  t.match(result.stdout, /^configuration: valid; set: .*REDIS_REQUIRE_DURABLE=true/)
  t.match(result.stdout, /\nworkflow order-flow: public\.orders on update; steps one → two → three\n/)
  t.match(result.stdout, /\n✗ orphaned work: queue renamed-away holds 1 jobs of a workflow JOBS_DIR does not define/)
  if (appendonly === 'no') t.match(result.stdout, /\n✗ appendonly is no, durability needs yes/)
  t.match(result.stdout, /\ndoctor: [1-9]\d* problems, \d+ warnings$/)

  const invalid = await doctor({ DEDUP_TTL: '0' })('doctor', '--json')
  t.equal(invalid.code, 1)
  t.match(JSON.parse(invalid.stdout), { ok: false, config: { valid: false }, problems: [/DEDUP_TTL/] })
  await old.obliterate({ force: true })
  await service.redis.srem(`${prefix}:_cf:queues`, 'renamed-away')
})

t.test('the README example, and an unreachable Redis', async (t) => {
  const result = await changeflow(['doctor'], envOf(service))
  t.equal(result.code, 0, result.stdout + result.stderr)
  t.match(result.stdout, /^configuration: valid;/)
  t.match(result.stdout, /\nredis 127\.0\.0\.1:\d+: version \d/)
  t.match(result.stdout, /\nSequin sink settings[^\n]*\n {2}http_endpoints:\n/)
  const down = await changeflow(['doctor'], { ...envOf(service), REDIS_URL: 'redis://127.0.0.1:9' })
  t.equal(down.code, 1)
  t.match(down.stdout, /\nredis: unreachable\n[\s\S]*✗ Redis cannot be reached: /)
})
