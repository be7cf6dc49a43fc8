import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { request, type Agent } from 'node:http'
import { join } from 'node:path'
import { projectRoot } from '../../src/config.ts'
import { suiteLog, tee } from './suite-logs.ts'
import { SOURCE_NODE_ARGS } from '../../scripts/lib/source-node.ts'

/** The worker settings of spawnWorker (proof.ts): short locks, so that stall recovery is quick. */
export const WORKER_ENV = {
  WORKER_CONCURRENCY: '8',
  LOCK_DURATION: '1500ms',
  STALLED_INTERVAL: '500ms',
  MAX_STALLED_COUNT: '100',
  RECONCILE_INTERVAL: '1s',
}

export interface Exit { code: number | null, signal: NodeJS.Signals | null, at: number }

export interface RoleProcess {
  child: ChildProcess
  /** Everything the process wrote, stdout and stderr, in arrival order. */
  output (): string
  /** The JSON log lines (stdout), parsed, in order. */
  lines (): Array<Record<string, unknown>>
  exited: Promise<Exit>
  /** Sends `signal` if the process still runs, and waits for its exit. */
  stop (signal?: NodeJS.Signals): Promise<Exit>
}

/**
 * A web or worker process from the sources (as `npm run dev:web` and `dev:worker` start them), run
 * directly so that signals reach the service itself: see spawnCommand.
 */
export function spawnRole (role: 'web' | 'worker', env: Record<string, string>, name: string = role): RoleProcess {
  return spawnCommand([process.execPath, ...SOURCE_NODE_ARGS, join(projectRoot, `src/main/${role}.ts`)], env, name)
}

/**
 * `command` in the project's folder with `env` (and PATH and HOME) only, its output captured and
 * teed into the suite's log file `<test>.<name>-<n>`.
 */
export function spawnCommand (command: readonly string[], env: Record<string, string>, name: string): RoleProcess {
  const child = spawn(command[0]!, command.slice(1), {
    cwd: projectRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const log = suiteLog(name)
  tee(child.stdout!, log)
  tee(child.stderr!, log)
  let output = ''
  let stdout = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { output += chunk; stdout += chunk })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  const exited = new Promise<Exit>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal, at: Date.now() }))
  })
  return {
    child,
    output: () => output,
    lines: () => stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>),
    exited,
    async stop (signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
  }
}

/** Resolves with `promise`, or rejects after `ms` naming `what`. */
export async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/**
 * POSTs `body` in two parts: the first at once, the rest after `pauseMs`, so that the request is
 * in flight (headers read, body still arriving) for that long. Resolves with the status and the
 * answer's `connection` header.
 */
export function slowPost (url: string, headers: Record<string, string>, body: Buffer, pauseMs: number, agent: Agent | false): Promise<{ status: number, connection: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { ...headers, 'content-length': String(body.length) } }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: String(res.headers.connection) }))
    })
    req.on('error', reject)
    req.write(body.subarray(0, 20))
    setTimeout(() => req.end(body.subarray(20)), pauseMs)
  })
}

/** Resident memory of a running process, in bytes (Linux: /proc/<pid>/status), or 0 once it is gone. */
export function rssBytes (pid: number): number {
  try {
    const kib = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
    return Number(kib ?? 0) * 1024
  } catch {
    return 0
  }
}
