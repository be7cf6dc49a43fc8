import { BenchError } from './settings.ts'

/** Seconds since `start` (from `process.hrtime.bigint()`). */
export function secondsSince (start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9
}

/** Aborted on Ctrl-C: the scenario running stops starting work, so that its keys can be deleted. */
export const interruption = new AbortController()

function checkInterrupted (): void {
  if (interruption.signal.aborted) throw new BenchError('interrupted')
}

/** Runs `work` on every item with at most `limit` in flight, like a client with a connection pool. */
export async function inParallel<T> (items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const lane = async () => {
    while (next < items.length) {
      checkInterrupted()
      await work(items[next++]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane))
}

export function median (values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** Rejects after `ms`, naming what took too long (a benchmark must end even when something hangs), or when interrupted. */
export function withTimeout<T> (work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  let onAbort: (() => void) | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new BenchError(`${what} took longer than ${ms / 1000} s (BENCH_TIMEOUT)`)), ms)
    onAbort = () => reject(new BenchError('interrupted'))
    interruption.signal.addEventListener('abort', onAbort, { once: true })
  })
  return Promise.race([work, timeout]).finally(() => {
    clearTimeout(timer)
    interruption.signal.removeEventListener('abort', onAbort!)
  })
}

export function chunks<T> (items: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/** One measurement: wall time, and the CPU each side spent in it (seconds). */
export interface Sample {
  seconds: number
  nodeCpu: number
  redisCpu: number
}

interface CpuSource {
  info (section: 'cpu'): Promise<string>
}

// Redis's main thread runs every command and script; its CPU is what a workload costs Redis.
async function redisCpu (redis: CpuSource): Promise<number> {
  const info = await redis.info('cpu')
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN)
  const main = field('used_cpu_user_main_thread') + field('used_cpu_sys_main_thread')
  return Number.isNaN(main) ? field('used_cpu_user') + field('used_cpu_sys') : main
}

/**
 * Starts a measurement; the returned function ends it. Redis's CPU counts every client, so a
 * busy shared Redis inflates that column (never the wall time of another scenario).
 */
export async function startClock (redis: CpuSource): Promise<() => Promise<Sample>> {
  const redisBefore = await redisCpu(redis)
  const cpuBefore = process.cpuUsage()
  const start = process.hrtime.bigint()
  return async () => {
    const seconds = secondsSince(start)
    const cpu = process.cpuUsage(cpuBefore)
    return { seconds, nodeCpu: (cpu.user + cpu.system) / 1e6, redisCpu: await redisCpu(redis) - redisBefore }
  }
}
