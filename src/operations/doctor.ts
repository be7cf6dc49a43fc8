import { Cluster } from 'ioredis'
import { CONFIG_KEYS, ConfigError, SECRET_KEYS, type Config } from '../config.ts'
import { BLOCK_REASONS, keySlot, QUARANTINE_QUEUE, type Layout } from '../keys.ts'
import { preflight } from '../main/preflight.ts'
import { checkRedis, type RedisSettings } from '../redis/checks.ts'
import type { RedisClient } from '../redis/connection.ts'
import { byQueue, queueWork } from '../runs/orphans.ts'
import type { Workflow } from '../workflows/define.ts'
import { loadWorkflows } from '../workflows/load.ts'

/** What `changeflow doctor` found: every problem makes it exit 1; warnings do not. */
export interface Diagnosis {
  ok: boolean
  problems: string[]
  warnings: string[]
  /** The settings set in the environment, secrets redacted. */
  config: { valid: boolean, set: Record<string, string> }
  redis?: {
    reachable: boolean
    nodes?: Array<{ address: string, settings: RedisSettings }>
    tripwires?: Array<{ shard: number, key: string, createdAt: string | null }>
    layout?: { recorded: number | null, configured: number, shards: Array<{ shard: number, tag: string, node?: string }> }
  }
  workflows?: Array<{ name: string, table: string, on: string[], steps: string[], ordered: boolean, late: string }>
  work?: { queues: Array<{ queue: string, jobs: number, consumed: boolean, defined: boolean }>, blocked: Record<string, number>, quarantined: number }
}

/** The setting's value as it may be shown: secrets hidden, a password in a Redis URL too. */
export function redact (key: string, value: string): string {
  if (SECRET_KEYS.has(key)) return key === 'SEQUIN_WEBHOOK_TOKENS' ? `[${value.split(',').filter(Boolean).length} redacted]` : '[redacted]'
  return key === 'REDIS_URL' ? value.replace(/\/\/([^@/]*)@/, '//[redacted]@') : value
}

export function configuredKeys (env: Record<string, string | undefined>): Record<string, string> {
  const known = new Set<string>(CONFIG_KEYS)
  return Object.fromEntries(Object.entries(env)
    .filter((entry): entry is [string, string] => known.has(entry[0]) && entry[1] !== undefined && entry[1] !== '')
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => [key, redact(key, value)]))
}

export interface DoctorDeps {
  env: Record<string, string | undefined>
  config: () => Config
  redis: () => RedisClient
  layout: () => Promise<Layout>
}

/** Looks at everything changeflow depends on, and says what is wrong. Never throws for what it finds. */
export async function diagnose (deps: DoctorDeps): Promise<Diagnosis> {
  const diagnosis: Diagnosis = { ok: false, problems: [], warnings: [], config: { valid: false, set: configuredKeys(deps.env) } }
  let config: Config
  try {
    config = deps.config()
    diagnosis.config.valid = true
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    diagnosis.problems.push(error.message)
    return diagnosis
  }
  try {
    preflight(config, 'all')
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    diagnosis.problems.push(error.message)
  }
  await diagnoseRedis(deps, config, diagnosis)
  try {
    const workflows = await loadWorkflows(config.JOBS_DIR)
    diagnosis.workflows = workflows.map(describe)
    if (workflows.length === 0) diagnosis.warnings.push(`no workflows in JOBS_DIR (${config.JOBS_DIR}): every change is unmatched`)
  } catch (error) {
    diagnosis.problems.push(`workflows cannot be loaded: ${(error as Error).message}`)
  }
  if (diagnosis.redis?.reachable) await diagnoseWork(deps, diagnosis)
  diagnosis.ok = diagnosis.problems.length === 0
  return diagnosis
}

function describe (workflow: Workflow): NonNullable<Diagnosis['workflows']>[number] {
  return {
    name: workflow.name,
    table: workflow.table,
    on: [...workflow.on],
    steps: workflow.steps.map((step) => step.name),
    ordered: workflow.ordered !== false,
    late: workflow.late ?? 'run',
  }
}

async function diagnoseRedis (deps: DoctorDeps, config: Config, diagnosis: Diagnosis): Promise<void> {
  const redis = deps.redis()
  try {
    await redis.ping()
  } catch (error) {
    diagnosis.redis = { reachable: false }
    diagnosis.problems.push(`Redis cannot be reached: ${(error as Error).message}`)
    return
  }
  const check = await checkRedis(redis, { requireDurable: config.REDIS_REQUIRE_DURABLE, tripwires: [] })
  diagnosis.problems.push(...check.problems)
  diagnosis.warnings.push(...check.warnings)
  const layout = await deps.layout()
  const used = await redis.scard(layout.home.queues()) > 0
  const tripwires = await Promise.all(layout.shards.map(async (keys, shard) => {
    const marker = await redis.get(keys.tripwire())
    const createdAt = marker === null ? null : (JSON.parse(marker) as { createdAt?: string }).createdAt ?? 'unknown'
    if (marker === null && used) {
      diagnosis.problems.push(`Redis lost data: the marker key ${keys.tripwire()} is gone while the keyspace holds changeflow's queues ` +
        '(flushed, restarted without its data, or failed over to a stale replica): see the README, Redis')
    }
    return { shard, key: keys.tripwire(), createdAt }
  }))
  if (!used) diagnosis.warnings.push(`no changeflow process has used this keyspace yet (REDIS_PREFIX ${config.REDIS_PREFIX})`)
  const text = await redis.get(layout.recordKey())
  const recorded = text === null ? null : (JSON.parse(text) as { shards: number }).shards
  if (recorded !== null && recorded !== config.REDIS_SHARDS) {
    diagnosis.problems.push(`the keyspace is laid out in ${recorded} shards and REDIS_SHARDS is ${config.REDIS_SHARDS}: processes refuse to start. ` +
      `Set REDIS_SHARDS=${recorded}, or drain the keyspace and switch (README, "Changing the shard count")`)
  }
  const shards = layout.shards.map((keys, shard) => ({
    shard,
    tag: keys.bullPrefix.slice(1, -1),
    node: redis instanceof Cluster ? redis.slots[keySlot(keys.rows())]?.[0] : undefined,
  }))
  diagnosis.redis = { reachable: true, nodes: check.nodes, tripwires, layout: { recorded, configured: config.REDIS_SHARDS, shards } }
}

async function diagnoseWork (deps: DoctorDeps, diagnosis: Diagnosis): Promise<void> {
  const redis = deps.redis()
  const layout = await deps.layout()
  const defined = new Set([...(diagnosis.workflows ?? []).map((workflow) => workflow.name), QUARANTINE_QUEUE])
  const queues = byQueue(await queueWork(redis, layout)).map((queue) => ({ queue: queue.queue, jobs: queue.total, consumed: queue.consumed, defined: defined.has(queue.queue) }))
  for (const queue of queues.filter((candidate) => !candidate.consumed)) {
    if (!queue.defined) {
      diagnosis.problems.push(`orphaned work: queue ${queue.queue} holds ${queue.jobs} jobs of a workflow JOBS_DIR does not define, and no worker runs it: ` +
        `drain it with a worker of the release that defines it, or npx changeflow discard-workflow ${queue.queue}`)
    } else if (queue.queue !== QUARANTINE_QUEUE) {
      diagnosis.warnings.push(`no worker runs ${queue.queue} now: its ${queue.jobs} jobs wait until one does (npm run worker)`)
    }
  }
  const blocked: Record<string, number> = {}
  for (const reason of BLOCK_REASONS) {
    blocked[reason] = (await Promise.all(layout.shards.map((keys) => redis.zcard(keys.blocked(reason))))).reduce((sum, n) => sum + n, 0)
    if (blocked[reason]! > 0) diagnosis.warnings.push(`${blocked[reason]} rows blocked (${reason}): npx changeflow blocked`)
  }
  const quarantined = queues.find((queue) => queue.queue === QUARANTINE_QUEUE)?.jobs ?? 0
  if (quarantined > 0) diagnosis.warnings.push(`${quarantined} messages in quarantine: npx changeflow quarantine`)
  diagnosis.work = { queues, blocked, quarantined }
}
