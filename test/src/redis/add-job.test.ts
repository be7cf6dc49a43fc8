import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { Queue, Worker } from 'bullmq'
import { compose } from '../../../src/redis/scripts.ts'
import { startRedisServer } from '../../../scripts/lib/redis-server.ts'

// The scripts add plain jobs with a few commands of their own instead of running BullMQ's add
// script a job (prelude.lua, addJob). What they leave must be exactly what BullMQ's script
// leaves: the job hash, the wait list, the id counter, the marker, the meta hash and the events.
// (The options are stored as given: the same JSON as BullMQ's script stores, keys in another order.)
const harness = compose(`
BULL, OWN = ARGV[1], ARGV[2]
local mode, now, optsJson, q = ARGV[3], tonumber(ARGV[4]), ARGV[5], queue(ARGV[6])
local out = {}
for i = 7, #ARGV, 2 do
  if ARGV[i] == 'fail' then
    redis.call('LPUSH', ARGV[i + 1], 'x') -- a later command of the script fails
  elseif mode == 'bullmq' then
    out[#out + 1] = bullmqAddStandardJob(q.keys, { cmsgpack.pack({ q.prefix, ARGV[i], 'step', now }), ARGV[i + 1], cmsgpack.pack(cjson.decode(optsJson)) })
  else
    out[#out + 1] = addJob(q, ARGV[i], 'step', ARGV[i + 1], optsJson, now)
  end
end
return out
`)

const MODES = ['bullmq', 'lean'] as const
type Mode = (typeof MODES)[number]
const OPTS = JSON.stringify({ attempts: 3, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: { age: 86400, count: 1000 }, removeOnFail: false })

t.test('adding a plain job: what BullMQ\'s add script leaves, with fewer commands', async (t) => {
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 })
  t.teardown(() => redis.disconnect())
  redis.defineCommand('addHarness', { lua: harness, numberOfKeys: 0 })
  const add = (mode: Mode, queue: string, jobs: Array<[string, string]>, opts = OPTS, now = 1764628000123) =>
    (redis as Redis & { addHarness (...args: string[]): Promise<string[]> }).addHarness('{t}', '{t}:own', mode, String(now), opts, queue, ...jobs.flat())

  // Everything of a queue, with stream entry ids (times) left out.
  async function snapshot (queue: string) {
    const base = `{t}:${queue}:`
    const keys = (await redis.keys(`${base}*`)).map((key) => key.slice(base.length)).sort()
    // Options compared as JSON: BullMQ's script stores its own encoding of them (keys reordered).
    const jobs: Record<string, Record<string, unknown>> = {}
    for (const key of keys) {
      if (!/^[a-z]+-\d+$/.test(key)) continue
      const hash: Record<string, unknown> = await redis.hgetall(base + key)
      jobs[key] = { ...hash, opts: JSON.parse(hash.opts as string) }
    }
    return {
      keys,
      jobs,
      wait: await redis.lrange(`${base}wait`, 0, -1),
      delayed: await redis.zrange(`${base}delayed`, '0', '-1'),
      id: await redis.get(`${base}id`),
      marker: await redis.zrange(`${base}marker`, '0', '-1', 'WITHSCORES'),
      meta: await redis.hgetall(`${base}meta`),
      events: (await redis.xrange(`${base}events`, '-', '+')).map(([, fields]) => fields),
    }
  }
  async function same (t: Test, prepare: (queue: string) => Promise<void>, steps: Array<(mode: Mode, queue: string) => Promise<unknown>>) {
    const replies: Record<string, unknown[]> = {}
    for (const mode of MODES) {
      const queue = `q-${mode}`
      await prepare(queue)
      replies[mode] = []
      for (const step of steps) replies[mode]!.push(await step(mode, queue))
    }
    const bull = await snapshot('q-bullmq')
    t.same(replies.lean, replies.bullmq, 'the same replies')
    t.same(await snapshot('q-lean'), bull, 'the same keys, job hashes, lists, counter, marker, meta and events')
    return bull
  }

  t.test('new jobs, then one added again', async (t) => {
    await redis.flushall()
    const bull = await same(t, async () => {}, [
      (mode, queue) => add(mode, queue, [['job-1', '{"a":1}'], ['job-2', '{"b":"é"}'], ['job-3', '{}']]),
      (mode, queue) => add(mode, queue, [['job-2', '{"b":"other"}'], ['job-4', '{"c":[1,2]}']]),
    ])
    t.same(bull.wait, ['job-4', 'job-3', 'job-2', 'job-1'], 'pushed in the order added, once each')
    t.equal(bull.jobs['job-2']!.data, '{"b":"é"}', 'a job added again keeps its data')
    t.same(bull.marker, ['0', '0'])
    t.equal(bull.id, '5')
    t.same(bull.events.map((fields) => fields[1]), ['added', 'waiting', 'added', 'waiting', 'added', 'waiting', 'duplicated', 'added', 'waiting'])
    t.same(bull.jobs['job-1'], { name: 'step', data: '{"a":1}', opts: bull.jobs['job-1']!.opts, timestamp: '1764628000123', delay: '0', priority: '0' })
    t.same(bull.jobs['job-1']!.opts, JSON.parse(OPTS))
  })

  t.test('a paused queue, and one at its global concurrency, get no marker', async (t) => {
    await redis.flushall()
    const paused = await same(t, (queue) => redis.hset(`{t}:${queue}:meta`, 'paused', 1).then(() => {}),
      [(mode, queue) => add(mode, queue, [['job-1', '{}']])])
    t.same(paused.marker, [])
    await redis.flushall()
    const maxed = await same(t, async (queue) => {
      await redis.hset(`{t}:${queue}:meta`, 'concurrency', 1)
      await redis.lpush(`{t}:${queue}:active`, 'job-0')
    }, [(mode, queue) => add(mode, queue, [['job-1', '{}']])])
    t.same(maxed.marker, [])
    await redis.flushall()
    const room = await same(t, async (queue) => {
      await redis.hset(`{t}:${queue}:meta`, 'concurrency', 2, 'opts.maxLenEvents', 50)
      await redis.lpush(`{t}:${queue}:active`, 'job-0')
    }, [(mode, queue) => add(mode, queue, [['job-1', '{}'], ['job-2', '{}']])])
    t.same(room.marker, ['0', '0'])
    t.equal(room.meta['opts.maxLenEvents'], '50', 'an events bound the queue has is kept')
  })

  t.test('options that are not plain (LIFO, a delay) go through BullMQ\'s script', async (t) => {
    await redis.flushall()
    const bull = await same(t, async () => {}, [
      (mode, queue) => add(mode, queue, [['job-1', '{}']]),
      (mode, queue) => add(mode, queue, [['job-2', '{}']], JSON.stringify({ lifo: true, attempts: 1 })),
      (mode, queue) => add(mode, queue, [['job-3', '{}']], JSON.stringify({ delay: 5000, attempts: 1 })),
      (mode, queue) => add(mode, queue, [['job-4', '{}']]),
    ])
    t.same(bull.wait, ['job-4', 'job-3', 'job-1', 'job-2'], 'the LIFO job at the far end, the others in the order added')
    t.equal(bull.jobs['job-3']!.delay, '5000', 'a delay is stored as BullMQ\'s add script stores it')
  })

  t.test('a script that fails after adding leaves every job it added in its list; a counter that holds no number adds nothing', async (t) => {
    await redis.flushall()
    await redis.set('{t}:not-a-list', 'x')
    const failed = await same(t, async () => {}, [
      (mode, queue) => add(mode, queue, [['job-1', '{}'], ['job-2', '{}'], ['fail', '{t}:not-a-list']]).catch((error: Error) => error.message.replace(/script: \w+/, 'script')),
    ])
    t.same(failed.wait, ['job-2', 'job-1'], 'the jobs added before the failure wait to run')
    await redis.flushall()
    const noNumber = await same(t, (queue) => redis.set(`{t}:${queue}:id`, 'not-a-number').then(() => {}), [
      (mode, queue) => add(mode, queue, [['job-1', '{}']]).catch((error: Error) => /not an integer/.test(error.message)),
    ])
    t.same(noNumber.jobs, {}, 'no job hash without its place in the list')
  })

  t.test('a BullMQ worker runs what was added', async (t) => {
    await redis.flushall()
    await add('lean', 'run', [['job-1', '{"n":1}'], ['job-2', '{"n":2}']])
    const seen: unknown[] = []
    const done = new Promise<void>((resolve) => {
      const worker = new Worker('run', async (job) => {
        seen.push(job.data)
        if (seen.length === 2) resolve()
      }, { connection: { url: server.url }, prefix: '{t}' })
      t.teardown(() => worker.close())
    })
    await done
    t.same(seen, [{ n: 1 }, { n: 2 }], 'in the order added')
    const queue = new Queue('run', { connection: { url: server.url }, prefix: '{t}' })
    t.teardown(() => queue.close())
    await new Promise((resolve) => setTimeout(resolve, 100))
    t.same(await queue.getJobCounts('completed', 'wait'), { completed: 2, wait: 0 })
  })
})
