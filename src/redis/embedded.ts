import { spawn, type ChildProcess } from 'node:child_process'
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { delimiter, join } from 'node:path'
import { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { redisAnswers } from './connection.ts'

export class RedisNotFoundError extends Error {
  override name = 'RedisNotFoundError'
}

export interface EmbeddedRedis {
  url: string
  stop (): Promise<void>
}

async function findBinary (name: string, path: string): Promise<string | null> {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, name)
    try {
      await access(candidate)
      return candidate
    } catch {}
  }
  return null
}

export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

/**
 * A private `redis-server` for a first run: data under `dir`, append-only file on, and
 * `noeviction`, because an evicted key is a lost job.
 */
export async function startEmbeddedRedis (dir: string, searchPath: string, log: Logger): Promise<EmbeddedRedis> {
  const binary = await findBinary('redis-server', searchPath)
  if (!binary) {
    throw new RedisNotFoundError(
      'changeflow needs Redis. REDIS_URL is not set, nothing answers on 127.0.0.1:6379, and no ' +
      'redis-server binary is installed to start a private one. Either install Redis (Debian/Ubuntu: ' +
      '"sudo apt-get install -y redis-server"; macOS: "brew install redis") and run npm start again, ' +
      'or point changeflow at your Redis with REDIS_URL=redis://host:6379 (see .env.example).')
  }
  await mkdir(dir, { recursive: true })
  const adopted = await adoptOrphan(dir, log)
  if (adopted) return adopted
  const port = await freePort()
  const child: ChildProcess = spawn(binary, [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '',
    '--maxmemory-policy', 'noeviction', '--daemonize', 'no', '--loglevel', 'warning',
  ], {
    stdio: ['ignore', 'ignore', 'inherit'],
    // Its own process group: Ctrl-C (or a SIGTERM to the group) reaches changeflow, which stops
    // Redis last, after its steps finished; not Redis first, under steps still running.
    detached: true,
  })

  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const url = `redis://127.0.0.1:${port}`
  const deadline = Date.now() + 10_000
  while (!(await redisAnswers(url))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`embedded redis-server (${binary}) did not start; its data folder is ${dir}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  log.info({ url, dir, binary }, 'no REDIS_URL and nothing on 127.0.0.1:6379: started a private redis-server (AOF on, noeviction); it stops with changeflow')
  await writeFile(join(dir, STATE), JSON.stringify({ url, pid: child.pid }))

  return {
    url,
    async stop () {
      await rm(join(dir, STATE), { force: true })
      if (child.exitCode !== null) return
      child.kill('SIGTERM') // redis-server flushes its append-only file on SIGTERM
      await exited
    },
  }
}

const STATE = 'changeflow-redis.json'

/**
 * A changeflow killed with SIGKILL leaves its redis-server running. A second server on the same
 * data folder would write the same append-only file, so the next start takes the orphan over.
 */
async function adoptOrphan (dir: string, log: Logger): Promise<EmbeddedRedis | null> {
  let state: { url: string, pid: number }
  try {
    state = JSON.parse(await readFile(join(dir, STATE), 'utf8'))
  } catch {
    return null
  }
  if (!(await redisAnswers(state.url))) return null
  log.info({ url: state.url, dir, pid: state.pid }, 'took over the private redis-server an earlier changeflow left running; it stops with changeflow')
  return {
    url: state.url,
    async stop () {
      await rm(join(dir, STATE), { force: true })
      const client = new Redis(state.url, { maxRetriesPerRequest: 0, retryStrategy: () => null })
      client.on('error', () => {})
      await client.call('SHUTDOWN').catch(() => {}) // persists the append-only file, then exits
      client.disconnect()
      for (let i = 0; i < 100 && await redisAnswers(state.url); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    },
  }
}
