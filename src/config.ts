import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'

/** Where Redis is looked for when REDIS_URL is not set. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379'

/**
 * The folder holding src/, routes/ and jobs/ as they run: the project itself from the TypeScript
 * sources (tsx), `dist/` once built. The default JOBS_DIR is relative to it, so a built service
 * loads the compiled workflows beside its compiled core.
 */
export const codeRoot = fileURLToPath(new URL('..', import.meta.url))

/** The nearest folder at or above `dir` holding a package.json. */
function packageRoot (dir: string): string {
  for (let at = dir; ; at = dirname(at)) {
    if (existsSync(join(at, 'package.json'))) return at.endsWith('/') ? at : `${at}/`
    if (dirname(at) === at) return dir
  }
}

/** Project root (the package's folder, built or not): .data/ is relative to it, not to the cwd. */
export const projectRoot = packageRoot(codeRoot)

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const SIZES: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }

/** `1500`, `30s`, `7d` → milliseconds, or undefined when it is no duration. A bare number is read in `bareUnit`. */
export function parseDuration (text: string, bareUnit: keyof typeof UNITS): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim().toLowerCase())
  return match ? Math.round(Number(match[1]) * UNITS[match[2] ?? bareUnit]!) : undefined
}

function duration (bareUnit: keyof typeof UNITS) {
  return z.string().trim().toLowerCase().transform((text, ctx) => {
    const ms = parseDuration(text, bareUnit)
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a duration like 30s, 15m, 7d; got "${text}"` })
      return z.NEVER
    }
    return ms
  })
}

/** A duration that must be at least 1 ms once rounded: Redis refuses `PX 0`, and a zero timer spins. */
const positive = (bareUnit: keyof typeof UNITS) => duration(bareUnit).pipe(z.number().min(1, 'must be at least 1 ms'))

/** `1048576`, `64mb` → bytes. */
const size = z.string().trim().toLowerCase().transform((text, ctx) => {
  const match = /^(\d+)(b|kb|mb|gb)?$/.exec(text)
  if (!match) {
    ctx.addIssue({ code: 'custom', message: `expected a size like 64mb or 1048576; got "${text}"` })
    return z.NEVER
  }
  return Number(match[1]) * SIZES[match[2] ?? 'b']!
})

const list = z.string().transform((text) => text.split(',').map((item) => item.trim()).filter(Boolean))
const hostPort = /^(\[[0-9a-fA-F:]+\]|[^\s:]+):(\d{1,5})$/
const nodes = list.pipe(z.array(z.string().regex(hostPort, 'expected host:port')).min(1, 'expected at least one host:port'))
const bool = z.enum(['true', 'false', '1', '0']).transform((text) => text === 'true' || text === '1')
const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.string().trim().regex(/^\d+$/, 'expected a whole number').transform(Number).pipe(z.number().int().min(min).max(max))
const httpUrl = z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })
const otlpProtocol = z.enum(['http/protobuf', 'http/json'], { error: 'expected http/protobuf or http/json (grpc is not supported: use port 4318)' })

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().default('0.0.0.0'),
  PORT: int(0, 65535).default(3000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Unset: `hash` with NODE_ENV=production, `plain` elsewhere (see withDefaults). */
  LOG_ROW_KEYS: z.enum(['hash', 'plain']).optional(),
  LOG_ROW_KEY_SECRET: z.string().min(16, 'at least 16 characters (openssl rand -base64 32)').optional(),
  REDIS_URL: z.string().url().optional(),
  REDIS_CLUSTER_NODES: nodes.optional(),
  REDIS_SHARDS: int(1, 1024).default(1),
  REDIS_WAIT_REPLICAS: int(0, 16).default(0),
  REDIS_WAIT_TIMEOUT: positive('ms').default(1_000),
  REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only').default('changeflow'),
  SEQUIN_WEBHOOK_TOKENS: list.default([]),
  JOBS_DIR: z.string().default(`${codeRoot}jobs`),
  DATA_DIR: z.string().default(`${projectRoot}.data`),
  BODY_LIMIT: size.default(64 * 1024 ** 2),
  DEDUP_TTL: positive('s').default(7 * UNITS.d!),
  // The change journal (src/journal): 0 turns it off.
  JOURNAL_RETENTION: duration('s').default(7 * UNITS.d!),
  JOURNAL_MAX_LEN: int(1).default(1_000_000),
  ENQUEUE_TIMEOUT: positive('ms').default(5_000),
  INVALID_MESSAGES: z.enum(['quarantine', 'reject']).default('quarantine'),
  QUARANTINE_LIMIT: int(1).default(10_000),
  MAX_BATCH_MESSAGES: int(1, 100_000).default(1_000),
  WORKER_CONCURRENCY: int(1).default(8),
  WORKER_SHARDS: list.pipe(z.array(z.string().regex(/^\d+$/, 'expected shard numbers').transform(Number))).optional(),
  STEP_ATTEMPTS: int(1).default(5),
  STEP_BACKOFF: duration('ms').default(1_000),
  KEEP_COMPLETED: int(0).default(1_000),
  KEEP_COMPLETED_AGE: duration('s').default(UNITS.d!),
  LOCK_DURATION: positive('ms').default(30_000),
  MAX_STALLED_COUNT: int(0).default(3),
  STALLED_INTERVAL: positive('ms').default(30_000),
  SHUTDOWN_GRACE: duration('ms').default(25_000),
  RECONCILE_INTERVAL: positive('ms').default(30_000),
  METRICS_TOKEN: z.string().optional(),
  METRICS_PORT: int(0, 65535).optional(),
  MAX_EVENT_LOOP_DELAY: duration('ms').default(1_000),
  MAX_HEAP_USED: size.default(0),
  BOARD_USERNAME: z.string().optional(),
  BOARD_PASSWORD: z.string().optional(),
  BOARD_READ_ONLY: bool.default(false),
  EMBEDDED_REDIS: bool.default(true),
  REDIS_REQUIRE_DURABLE: bool.default(false),
  REDIS_CHECK_INTERVAL: positive('ms').default(30_000),
  // OpenTelemetry's standard variables that decide whether changeflow traces and how it exports
  // (src/tracing/tracing.ts). The SDK reads these and its other variables (headers, sampler,
  // batching, resource attributes) from the environment itself, as every OpenTelemetry SDK does.
  OTEL_SDK_DISABLED: bool.default(false),
  OTEL_TRACES_EXPORTER: list.pipe(z.array(z.enum(['otlp', 'console', 'none']))).optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl.optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl.optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: otlpProtocol.default('http/protobuf'),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: otlpProtocol.optional(),
})

/** Defaults that depend on another setting. */
function withDefaults (config: z.infer<typeof envSchema>) {
  return { ...config, LOG_ROW_KEYS: config.LOG_ROW_KEYS ?? (config.NODE_ENV === 'production' ? 'hash' : 'plain') }
}

export type Config = Readonly<ReturnType<typeof withDefaults>>

/** Every setting's name, as the environment spells it. */
export const CONFIG_KEYS = Object.keys(envSchema.shape) as Array<keyof Config>

/** Settings that are secrets: shown as set, never with their value. */
export const SECRET_KEYS: ReadonlySet<string> = new Set(['SEQUIN_WEBHOOK_TOKENS', 'METRICS_TOKEN', 'BOARD_PASSWORD', 'LOG_ROW_KEY_SECRET'])

/** Settings that each make sense alone but not together: refused, with the reason. */
function contradictions (config: z.infer<typeof envSchema>, env: Record<string, string | undefined>): string[] {
  const problems: string[] = []
  if (config.DEDUP_TTL < config.KEEP_COMPLETED_AGE) {
    problems.push(`  DEDUP_TTL: ${env.DEDUP_TTL ?? 'the default'} is shorter than KEEP_COMPLETED_AGE (${env.KEEP_COMPLETED_AGE ?? 'the default'}): ` +
      'a change redelivered in between would be accepted as new while its finished jobs still exist, so nothing would run for it. ' +
      'Keep DEDUP_TTL at least as long as KEEP_COMPLETED_AGE')
  }
  if (config.QUARANTINE_LIMIT < config.MAX_BATCH_MESSAGES) {
    problems.push(`  QUARANTINE_LIMIT: ${config.QUARANTINE_LIMIT} is below MAX_BATCH_MESSAGES (${config.MAX_BATCH_MESSAGES}): ` +
      'a batch of invalid messages larger than the quarantine could never be taken, and Sequin would retry it forever')
  }
  if (config.REDIS_WAIT_REPLICAS > 0 && config.REDIS_WAIT_TIMEOUT >= config.ENQUEUE_TIMEOUT) {
    problems.push(`  REDIS_WAIT_TIMEOUT: ${config.REDIS_WAIT_TIMEOUT} ms is not below ENQUEUE_TIMEOUT (${config.ENQUEUE_TIMEOUT} ms): ` +
      'the wait for replicas is part of the enqueue and must fit in it')
  }
  const outside = (config.WORKER_SHARDS ?? []).filter((shard) => shard >= config.REDIS_SHARDS)
  if (outside.length > 0) {
    problems.push(`  WORKER_SHARDS: ${outside.join(', ')} not below REDIS_SHARDS (${config.REDIS_SHARDS}): shards are numbered from 0`)
  }
  if (env.WORKER_METRICS_PORT !== undefined) {
    problems.push('  WORKER_METRICS_PORT: renamed METRICS_PORT (it now serves /metrics for web processes too)')
  }
  return problems
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Parses the environment once. Nothing else in the project reads `process.env`. */
export function loadConfig (env: Record<string, string | undefined>): Config {
  const defined = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''))
  const parsed = envSchema.safeParse(defined)
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`)
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`)
  }
  const problems = contradictions(parsed.data, defined)
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n${problems.join('\n')}`)
  return Object.freeze(withDefaults(parsed.data))
}
