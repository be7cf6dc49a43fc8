import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../../src/redis/embedded.ts'
import { redisAnswers } from '../../src/redis/connection.ts'

/** Where a server's own log lines go: a fault-suite log file, say. */
export interface LogSink {
  write (text: string): void
}

export interface RedisServerOptions {
  /** Where the server's own log goes; without it, nowhere. */
  log?: LogSink
  /** This port instead of a free one (a cluster node needs its port + 10000 free too). */
  port?: number
}

export interface RedisServer {
  url: string
  port: number
  /** Its data folder: kept by kill() and restart(), removed by stop(). */
  dir: string
  /** The running process's id. */
  pid (): number
  /** SIGKILLs it (if running or paused) and removes its data folder. */
  stop (): Promise<void>
  /** SIGSTOP: connections stay open and nothing is answered, as with a hung host. */
  pause (): void
  /** SIGCONT after pause(). */
  resume (): void
  /** Ends the process (SIGKILL by default: no last write, no shutdown save) and waits for it; keeps `dir`. */
  kill (signal?: NodeJS.Signals): Promise<void>
  /** Starts it again on the same port and folder, with the same arguments; resolves once it answers (data loaded). */
  restart (): Promise<void>
}

const STARTUP_MS = 10_000

/**
 * A private redis-server on a free loopback port, for tests that break or misconfigure it.
 * `args` come after the defaults (no RDB snapshots, no append-only file), so they override
 * them: `['--appendonly', 'yes', '--appendfsync', 'always']`, `['--maxmemory', '8mb']`.
 */
export async function startRedisServer (args: string[] = [], options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = options.port ?? await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'changeflow-redis-'))
  const url = `redis://127.0.0.1:${port}`
  const argv = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...args]
  let child: ChildProcess
  let exited: Promise<void>
  let paused = false

  const running = () => child.exitCode === null && child.signalCode === null
  const launch = async () => {
    child = spawn('redis-server', argv, { stdio: ['ignore', options.log ? 'pipe' : 'ignore', options.log ? 'pipe' : 'ignore'] })
    const log = options.log
    if (log) {
      child.stdout!.on('data', (chunk: Buffer) => log.write(chunk.toString('utf8')))
      child.stderr!.on('data', (chunk: Buffer) => log.write(chunk.toString('utf8')))
    }
    exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    paused = false
    const deadline = Date.now() + STARTUP_MS
    while (!(await redisAnswers(url))) {
      if (!running() || Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (!running()) return
    child.kill(signal)
    if (paused && signal !== 'SIGKILL') child.kill('SIGCONT') // a stopped process only acts on SIGKILL
    await exited
  }

  await launch()
  return {
    url,
    port,
    dir,
    pid: () => child.pid ?? -1,
    pause () {
      if (running()) child.kill('SIGSTOP')
      paused = true
    },
    resume () {
      if (running()) child.kill('SIGCONT')
      paused = false
    },
    kill,
    async restart () {
      await kill()
      await launch()
    },
    async stop () {
      await kill()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
