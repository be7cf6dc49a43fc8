import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { projectRoot } from '../src/config.ts'
import { freePort } from '../src/redis/embedded.ts'
import { startRedisServer } from '../scripts/lib/redis-server.ts'
import { TOKEN } from './lib/context.ts'
import { median } from './lib/measure.ts'
import { summariseProfile, type ProfileShare } from './lib/profile.ts'
import { ratio, table } from './lib/table.ts'
import { SOURCE_NODE_ARGS } from '../scripts/lib/source-node.ts'

/** One side of the comparison: a receiver process of its own. */
type Receiver = 'bare' | 'changeflow' | 'naive'
const RECEIVERS: Receiver[] = ['bare', 'changeflow', 'naive']

/** Batch size, requests per run and connections (Sequin posts up to 80 batches at once). */
export const LOADS = [
  { batch: 1, amount: 3000, connections: 16 },
  { batch: 10, amount: 600, connections: 16 },
  { batch: 100, amount: 120, connections: 10 },
  { batch: 1000, amount: 16, connections: 4 },
] as const

interface LoadResult { seconds: number, requests: number, p50: number, p99: number, errors: number, statuses: Record<string, number>, cpuUs: number }

export interface Run {
  receiver: Receiver | 'changeflow (redelivered)'
  batch: number
  messagesPerSecond: number
  p99: number
  /** CPU µs a message cost: the receiver process, Redis's main thread, the load generator. */
  receiverCpuUs: number
  redisCpuUs: number
  loadCpuUs: number
  /** At batch 100 (INFO commandstats): Redis's time a message in scripts, in the commands they ran, and those commands' count. */
  redis?: RedisTime
}

/** Where Redis's time went, a message: the scripts' whole run and the commands inside them. */
export interface RedisTime {
  scriptUs: number
  commandUs: number
  commands: number
}

const jobsDir = fileURLToPath(new URL('jobs/', import.meta.url))

function cpuSeconds (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in clock ticks (100 Hz)
}

async function redisCpu (redis: Redis): Promise<number> {
  const info = await redis.info('cpu')
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0)
  return field('used_cpu_user_main_thread') + field('used_cpu_sys_main_thread')
}

function waitForLine (child: ChildProcess, pattern: RegExp, what: string): Promise<string> {
  let output = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${output.slice(-800)}`)), 20_000)
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8')
      const match = pattern.exec(output)
      if (!match) return
      clearTimeout(timer)
      child.stdout!.off('data', onData)
      child.stdout!.resume()
      resolve(match[1] ?? match[0])
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString('utf8') })
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}): ${output.slice(-800)}`)))
  })
}

// What INFO commandstats lists besides the receivers' work: the bench's own reads and resets.
const NOT_THE_RECEIVERS = new Set(['info', 'config|resetstat', 'ping', 'flushall'])

/**
 * Redis's time in scripts and in the commands they ran since the last CONFIG RESETSTAT, from INFO
 * commandstats: a script's time includes its commands', which Redis also counts command by command.
 */
async function redisTime (redis: Redis, messages: number): Promise<RedisTime> {
  let scriptUs = 0
  let commandUs = 0
  let commands = 0
  for (const match of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    const [, name, calls, usec] = match as unknown as [string, string, string, string]
    if (NOT_THE_RECEIVERS.has(name) || name.startsWith('client')) continue
    if (name === 'evalsha' || name === 'eval') scriptUs += Number(usec)
    else {
      commandUs += Number(usec)
      commands += Number(calls)
    }
  }
  return { scriptUs: scriptUs / messages, commandUs: commandUs / messages, commands: commands / messages }
}

/** Polls `url` until it answers 200 (changeflow logs at warn: no line says it listens). */
async function ready (url: string, child: ChildProcess): Promise<void> {
  child.stdout!.resume()
  child.stderr!.resume()
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the receiver exited (${child.exitCode})`)
    try {
      if ((await fetch(url)).status === 200) return
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`${url} did not answer 200 within 20 s`)
}

export async function startReceiver (receiver: Receiver, redisUrl: string, options: { cpuProfileDir?: string } = {}): Promise<{ child: ChildProcess, url: string }> {
  const port = await freePort()
  const prefix = `h-${randomBytes(4).toString('hex')}`
  const common = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', REDIS_URL: redisUrl, PORT: String(port) }
  const profile = options.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`] : []
  const child = receiver === 'changeflow'
    ? spawn(process.execPath, [...profile, ...SOURCE_NODE_ARGS, `${projectRoot}src/main/web.ts`], {
      cwd: projectRoot,
      env: { ...common, HOST: '127.0.0.1', REDIS_PREFIX: prefix, JOBS_DIR: jobsDir, SEQUIN_WEBHOOK_TOKENS: TOKEN, LOG_LEVEL: 'warn', DATA_DIR: `/tmp/changeflow-bench-${prefix}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    : spawn(process.execPath, [...profile, ...SOURCE_NODE_ARGS, `${projectRoot}bench/receivers/bare.ts`], {
      cwd: projectRoot,
      env: { ...common, PREFIX: prefix, TOKEN, RECEIVER: receiver },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
  if (receiver === 'changeflow') await ready(`http://127.0.0.1:${port}/readyz`, child)
  else await waitForLine(child, /listening (\d+)/, receiver)
  return { child, url: `http://127.0.0.1:${port}/webhooks/sequin` }
}

export async function stopReceiver (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}

/**
 * The load generator: its own process, so that its CPU is not the receiver's. With `warmUp`, it
 * first sends that many requests (changes of their own, before the measured ones), then calls
 * `beforeMeasuring` and only then sends the measured load.
 */
export async function load (url: string, batch: number, amount: number, connections: number, warmUp = 0, beforeMeasuring: () => Promise<void> = async () => {}): Promise<LoadResult> {
  const child = spawn(process.execPath, [...SOURCE_NODE_ARGS, `${projectRoot}bench/lib/load.ts`, url, TOKEN, String(batch), String(amount), String(connections), String(warmUp)], {
    cwd: projectRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  if (warmUp > 0) {
    await waitForLine(child, /^warm$/m, 'the load generator\'s warm-up')
    await beforeMeasuring()
    child.stdin!.write('go\n')
  } else {
    child.stdin!.end()
  }
  const line = await waitForLine(child, /^\{.*\}$/m, 'the load generator')
  await new Promise((resolve) => child.once('exit', resolve))
  return JSON.parse(line) as LoadResult
}

/**
 * One measured run: a fresh receiver process, a warm-up, then the measured load (the same
 * messages for every receiver); and for changeflow, the same load again (every change a duplicate).
 */
async function measure (receiver: Receiver, spec: (typeof LOADS)[number], redisUrl: string, admin: Redis): Promise<Run[]> {
  const { child, url } = await startReceiver(receiver, redisUrl)
  try {
    const run = async (name: Run['receiver'], warmUp: number): Promise<Run> => {
      let receiverBefore = 0
      let redisBefore = 0
      const before = async () => {
        [receiverBefore, redisBefore] = [cpuSeconds(child.pid!), await redisCpu(admin)]
        await admin.config('RESETSTAT')
      }
      if (warmUp === 0) await before()
      const result = await load(url, spec.batch, spec.amount, spec.connections, warmUp, before)
      const [receiverAfter, redisAfter] = [cpuSeconds(child.pid!), await redisCpu(admin)]
      const messages = result.requests * spec.batch
      const redis = spec.batch === 100 ? await redisTime(admin, messages) : undefined
      if (result.errors > 0) throw new Error(`${name} at batch ${spec.batch}: ${result.errors} failed requests (${JSON.stringify(result.statuses)})`)
      return {
        receiver: name,
        batch: spec.batch,
        messagesPerSecond: messages / result.seconds,
        p99: result.p99,
        receiverCpuUs: ((receiverAfter - receiverBefore) / messages) * 1e6,
        redisCpuUs: ((redisAfter - redisBefore) / messages) * 1e6,
        loadCpuUs: result.cpuUs / messages,
        redis,
      }
    }
    // Warmed up first (JIT, scripts, connections) with changes of its own, in the same load process.
    const runs = [await run(receiver, Math.max(4, Math.round(spec.amount / 5)))]
    // The same load again: the generator starts its rows over, so every change is a duplicate.
    if (receiver === 'changeflow' && spec.batch === 100) runs.push(await run('changeflow (redelivered)', 0))
    return runs
  } finally {
    await stopReceiver(child)
    await admin.flushall() // a server this part started
  }
}

export interface HttpFigures {
  text: string
  runs: Run[]
  /** Where each receiver's main thread spent its time at batch 100 (a profiled, unmeasured run). */
  profiles: Record<string, ProfileShare[]>
}

/** One more run of changeflow and the bare receiver at batch 100 under `--cpu-prof`: what bounds each. */
async function profileAt100 (redisUrl: string, admin: Redis): Promise<Record<string, ProfileShare[]>> {
  const spec = LOADS.find((load) => load.batch === 100)!
  const profiles: Record<string, ProfileShare[]> = {}
  for (const receiver of ['changeflow', 'bare'] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'changeflow-profile-'))
    try {
      const { child, url } = await startReceiver(receiver, redisUrl, { cpuProfileDir: dir })
      try {
        await load(url, spec.batch, spec.amount, spec.connections)
      } finally {
        await stopReceiver(child) // the profile is written as the process exits
        await admin.flushall()
      }
      profiles[receiver] = summariseProfile(dir, 6).shares
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
  return profiles
}

/**
 * Ingest over HTTP, side by side: changeflow's web process, the receiver a user would write by hand
 * (Fastify + zod + `addBulk`) and a naive one (`await queue.add` per message), each its own process
 * on a private redis-server, loaded by autocannon from a third process with the same ~1 KiB Sequin
 * messages. Receivers take turns within each round, so that they share the machine's noise.
 */
export async function benchHttp (repeats: number): Promise<HttpFigures> {
  const server = await startRedisServer(['--maxmemory-policy', 'noeviction'])
  const admin = new Redis(server.url, { maxRetriesPerRequest: 1 })
  const runs: Run[] = []
  let profiles: Record<string, ProfileShare[]> = {}
  try {
    for (const spec of LOADS) {
      for (let round = 0; round < repeats; round++) {
        // Alternated: each receiver goes first in some round.
        const order = RECEIVERS.map((_, i) => RECEIVERS[(i + round) % RECEIVERS.length]!)
        for (const receiver of order) {
          const measured = await measure(receiver, spec, server.url, admin)
          runs.push(...measured)
          for (const run of measured) process.stderr.write(`  http batch ${spec.batch} round ${round + 1}/${repeats} ${run.receiver}: ${Math.round(run.messagesPerSecond)} msgs/s, p99 ${run.p99} ms\n`)
        }
      }
    }
    process.stderr.write('  http: profiling changeflow and bare at batch 100\n')
    profiles = await profileAt100(server.url, admin)
  } finally {
    admin.disconnect()
    await server.stop()
  }
  const where = (receiver: string) => (profiles[receiver] ?? []).map((share) => `${share.where} ${Math.round(share.share * 100)}%`).join(', ')
  const text = [
    httpTable(runs),
    '',
    cpuSumText(runs),
    '',
    'Redis\'s time a message at batch 100 (INFO commandstats: time spent inside Redis, above its CPU time when the cores are contended; a script\'s time includes its commands\'): the commands a receiver runs, and the Lua around them. The commands alone show what the extra bookkeeping costs before any Lua:',
    '',
    redisTimeTable(runs),
    '',
    'Where the receivers\' main threads spent their CPU at batch 100 (`--cpu-prof`, self time, idle excluded; `node` is Node\'s own code: sockets, HTTP parsing, module loading):',
    '',
    `- changeflow: ${where('changeflow')}`,
    `- bare: ${where('bare')}`,
  ].join('\n')
  return { text, runs, profiles }
}

/** The runs of one receiver at one batch size. */
export const runsOf = (runs: readonly Run[], receiver: Run['receiver'], batch: number) => runs.filter((run) => run.receiver === receiver && run.batch === batch)

/** The median rate of one receiver at one batch size (NaN when it was not measured). */
export function rateOf (runs: readonly Run[], receiver: Run['receiver'], batch: number): number {
  const mine = runsOf(runs, receiver, batch)
  return mine.length === 0 ? NaN : median(mine.map((run) => run.messagesPerSecond))
}

/**
 * The CPU a message costs in all three processes, against the rate: with every core busy, a
 * receiver's rate is about the inverse of that sum, and so the ratio of two sums predicts the
 * ratio of two rates (see README, Benchmark).
 */
export function cpuSumText (runs: readonly Run[]): string {
  const sum = (receiver: Run['receiver'], batch: number) => median(runsOf(runs, receiver, batch).map((run) => run.receiverCpuUs + run.redisCpuUs + run.loadCpuUs))
  const lines = LOADS.filter(({ batch }) => runsOf(runs, 'changeflow', batch).length > 0 && runsOf(runs, 'bare', batch).length > 0)
    .map(({ batch }) => {
      const [bare, changeflow] = [sum('bare', batch), sum('changeflow', batch)]
      return `- batch ${batch}: bare ${Math.round(bare)} µs, changeflow ${Math.round(changeflow)} µs: predicted ${ratio(bare / changeflow)}, measured ${ratio(rateOf(runs, 'changeflow', batch) / rateOf(runs, 'bare', batch))}`
    })
  return ['CPU a message in all three processes (receiver + Redis + load generator), and the ratio of rates that predicts on a machine whose cores are all busy:', '', ...lines].join('\n')
}

export function redisTimeTable (runs: readonly Run[]): string {
  const rows: string[][] = []
  for (const receiver of [...RECEIVERS, 'changeflow (redelivered)'] as const) {
    const measured = runs.filter((run) => run.receiver === receiver && run.redis !== undefined).map((run) => run.redis!)
    if (measured.length === 0) continue
    const med = (pick: (time: RedisTime) => number) => median(measured.map(pick))
    rows.push([
      receiver, med((time) => time.commands).toFixed(1), med((time) => time.commandUs).toFixed(1),
      // No script (a redelivery answered from the process's memory): its commands ran on their own.
      med((time) => time.scriptUs) === 0 ? '-' : med((time) => time.scriptUs - time.commandUs).toFixed(1), med((time) => time.scriptUs).toFixed(1),
    ])
  }
  return table(['receiver', 'commands/msg', 'commands µs/msg', 'Lua and script calls µs/msg', 'scripts µs/msg'], rows)
}

export function httpTable (runs: readonly Run[]): string {
  const pick = (receiver: Run['receiver'], batch: number) => runsOf(runs, receiver, batch)
  const med = (values: number[]) => (values.length === 0 ? NaN : median(values))
  const rows: string[][] = []
  for (const { batch } of LOADS) {
    const bare = med(pick('bare', batch).map((run) => run.messagesPerSecond))
    for (const receiver of [...RECEIVERS, 'changeflow (redelivered)'] as const) {
      const mine = pick(receiver, batch)
      if (mine.length === 0) continue
      const rate = med(mine.map((run) => run.messagesPerSecond))
      rows.push([
        String(batch), receiver, Math.round(rate).toLocaleString('en-US'), ratio(rate / bare),
        String(Math.round(med(mine.map((run) => run.p99)))),
        String(Math.round(med(mine.map((run) => run.receiverCpuUs)))), String(Math.round(med(mine.map((run) => run.redisCpuUs)))),
        String(Math.round(med(mine.map((run) => run.loadCpuUs)))),
      ])
    }
  }
  return table(['batch', 'receiver', 'messages/s', 'vs bare', 'p99 ms', 'receiver CPU µs/msg', 'Redis CPU µs/msg', 'load generator CPU µs/msg'], rows)
}
