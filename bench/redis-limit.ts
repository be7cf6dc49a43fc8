import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { loadConfig } from '../src/config.ts'
import { scriptArguments } from '../src/ingest/group-commit.ts'
import { createJobOptions } from '../src/ingest/job-options.ts'
import { planBatch } from '../src/ingest/plan.ts'
import { Keyspace } from '../src/keys.ts'
import { scriptSources } from '../src/redis/scripts.ts'
import { loadWorkflows } from '../src/workflows/load.ts'
import { startRedisServer } from '../scripts/lib/redis-server.ts'
import { newRow, orderPaid } from './lib/workload.ts'

export interface RedisLimit {
  /** Changes a second Redis takes through the ingest script, with nothing else to do. */
  changesPerSecond: number
  /** Redis main-thread CPU a change costs there. */
  cpuUsPerChange: number
  changesPerCall: number
}

async function redisCpu (redis: Redis): Promise<number> {
  const info = await redis.info('cpu')
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0)
  return field('used_cpu_user_main_thread') + field('used_cpu_sys_main_thread')
}

function run (command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString('utf8') })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString('utf8') })
    child.once('error', reject)
    child.once('exit', (code) => code === 0 ? resolve(output) : reject(new Error(`${command} exited ${code}: ${output.slice(-500)}`)))
  })
}

/**
 * Redis's own limit for what changeflow asks of it: `redis-benchmark` calling the ingest script
 * (EVALSHA) with a batch of `perCall` new changes a call, as the web process would send it, from
 * its own client (no HTTP, no JSON parsing, no planning). Every change, row and job id gets a
 * fresh random part each call (`__rand_int__`), so nothing is a duplicate.
 */
export async function measureRedisLimit (perCall = 100, calls = 300): Promise<RedisLimit> {
  const server = await startRedisServer(['--maxmemory-policy', 'noeviction'])
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 })
  try {
    const config = loadConfig({ REDIS_PREFIX: 'limit', SEQUIN_WEBHOOK_TOKENS: 'bench-token-0123456789abcdef' })
    const workflows = (await loadWorkflows(fileURLToPath(new URL('jobs/', import.meta.url)))).filter((workflow) => workflow.name === 'bench-ingest')
    const keys = new Keyspace(config.REDIS_PREFIX)
    const messages = Array.from({ length: perCall }, () => orderPaid('orders', newRow()))
    const plan = planBatch(messages, workflows, createJobOptions(workflows, config), new Date())
    if (plan.changes.length !== perCall) throw new Error(`the limit's batch plans ${plan.changes.length} of ${perCall} changes`)
    const segment = { ...plan, now: Date.now(), ttl: config.DEDUP_TTL, quarantineLimit: config.QUARANTINE_LIMIT }
    const { argv } = scriptArguments(keys, [segment])
    argv[0] = argv[0]!.replace(/"(id|run|row|pkRow)":"([^"]*)"/g, '"$1":"$2__rand_int__"')
    const sha = String(await redis.script('LOAD', scriptSources.ingest))
    const before = await redisCpu(redis)
    const started = performance.now()
    await run('redis-benchmark', ['-p', String(server.port), '-c', '4', '-n', String(calls), '-r', '1000000000', '-q',
      'EVALSHA', sha, '1', keys.rows(), ...argv])
    const seconds = (performance.now() - started) / 1000
    const cpu = await redisCpu(redis) - before
    // BullMQ counts every job it adds, custom ids included.
    const added = Number(await redis.get(`${keys.bullPrefix}:bench-ingest:id`) ?? 0)
    if (added < calls * perCall * 0.99) throw new Error(`redis-benchmark's calls added ${added} jobs, expected ${calls * perCall}`)
    return { changesPerSecond: added / seconds, cpuUsPerChange: (cpu / added) * 1e6, changesPerCall: perCall }
  } finally {
    redis.disconnect()
    await server.stop()
  }
}
