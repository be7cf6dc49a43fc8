/** Everything the benchmark reads from the environment, parsed once. */
export interface Settings {
  redisUrl: string
  scale: number
  /** Part 1: batches per measurement, messages per batch, requests (or addBulk calls) in flight. */
  batches: number
  batchSize: number
  inFlight: number
  /** Measurements per scenario; the median is reported. */
  repeats: number
  /** Part 2: changes per measurement (two steps each), steps in flight per worker. */
  changes: number
  workerConcurrency: number
  /** Part 2: share of changes whose row already had an earlier change in the same measurement. */
  sharedRows: number
  parts: Set<Part>
  /** Longest a single measurement may take before the benchmark gives up. */
  timeoutMs: number
  /** Where the figures go as JSON (BENCH_JSON). */
  jsonPath: string
  /** changeflow's log level; anything but silent is written to /dev/null, to measure its cost. */
  logLevel: 'silent' | 'info' | 'debug'
}

export const PARTS = ['http', 'ingest', 'steps', 'memory', 'journal', 'scale'] as const
export type Part = (typeof PARTS)[number]
/** `ingest` (the in-process breakdown of ingest) runs when asked: the HTTP part measures ingest as Sequin sees it. */
export const DEFAULT_PARTS: readonly Part[] = ['http', 'steps', 'memory', 'journal', 'scale']

/** A failure whose message says it all: reported without a stack. */
export class BenchError extends Error {}

function number (env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const text = env[name]
  if (text === undefined || text.trim() === '') return fallback
  const value = Number(text)
  if (!Number.isFinite(value) || value < min || value > max) throw new BenchError(`${name} must be a number from ${min} to ${max}; got "${text}"`)
  return value
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1'])

export function readSettings (env: NodeJS.ProcessEnv): Settings {
  const scale = number(env, 'BENCH_SCALE', 1, 0.01, 100)
  const redisUrl = env.REDIS_URL || 'redis://127.0.0.1:6379'
  let host: string
  try {
    host = new URL(redisUrl).hostname
  } catch {
    throw new BenchError(`REDIS_URL is not a URL: ${redisUrl}`)
  }
  // Figures over a network measure the network; and a benchmark should not load a shared Redis.
  if (!LOOPBACK.has(host) && !host.startsWith('127.') && env.BENCH_ALLOW_REMOTE_REDIS !== '1') {
    throw new BenchError(`REDIS_URL points at ${host}, not loopback: set BENCH_ALLOW_REMOTE_REDIS=1 if you mean it`)
  }
  const parts = new Set((env.BENCH_PARTS || DEFAULT_PARTS.join(',')).split(',').map((part) => part.trim()))
  for (const part of parts) {
    if (!(PARTS as readonly string[]).includes(part)) throw new BenchError(`BENCH_PARTS lists some of ${PARTS.join(', ')}; got "${part}"`)
  }
  const logLevel = env.BENCH_LOG_LEVEL || 'silent'
  if (logLevel !== 'silent' && logLevel !== 'info' && logLevel !== 'debug') throw new BenchError(`BENCH_LOG_LEVEL is silent, info or debug; got "${logLevel}"`)
  const int = (name: string, fallback: number, min: number, max: number) => Math.round(number(env, name, fallback, min, max))
  return {
    redisUrl,
    scale,
    batches: int('BENCH_BATCHES', Math.max(1, Math.round(200 * scale)), 1, 100_000),
    batchSize: int('BENCH_BATCH_SIZE', 100, 1, 1000),
    inFlight: int('BENCH_IN_FLIGHT', 4, 1, 64),
    repeats: int('BENCH_REPEATS', 3, 1, 20),
    changes: int('BENCH_CHANGES', Math.max(10, Math.round(3000 * scale)), 1, 1_000_000),
    workerConcurrency: int('BENCH_WORKER_CONCURRENCY', 16, 1, 1000),
    sharedRows: number(env, 'BENCH_SHARED_ROWS', 0.1, 0, 0.9),
    parts: parts as Set<Part>,
    timeoutMs: int('BENCH_TIMEOUT', 120, 1, 3600) * 1000,
    logLevel,
    jsonPath: env.BENCH_JSON || 'bench-results.json',
  }
}
