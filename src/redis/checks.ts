import { isRedisVersionLowerThan, RedisConnection } from 'bullmq'
import { Cluster, type Redis } from 'ioredis'
import type { RedisClient } from './connection.ts'
import { checkTripwire, type TripwireOutcome, type TripwireState } from './tripwire.ts'

export interface RedisSettings {
  version: string
  role: string
  /** null: unknown (INFO did not show it and CONFIG GET is not allowed). */
  maxmemoryPolicy: string | null
  appendonly: string | null
  appendfsync: string | null
}

export interface RedisCheck {
  /** The first (or only) server's settings. */
  settings: RedisSettings
  /** Every master's, on a cluster (`host:port`); the one server's otherwise. */
  nodes: Array<{ address: string, settings: RedisSettings }>
  /** Each one makes the service not ready: writes would fail, or be lost. */
  problems: string[]
  /** Risks an operator should know about; the service still runs. */
  warnings: string[]
  tripwire: TripwireOutcome
}

export interface CheckOptions {
  /** Refuse (rather than warn) when a Redis crash could lose acknowledged changes. */
  requireDurable: boolean
  /** One data-loss marker per shard (each on the node that holds the shard), with what this process saw of it. */
  tripwires: Array<{ key: string, state: TripwireState }>
}

// BullMQ refuses to connect below its minimum and only warns below the recommended version.
const MINIMUM_VERSION = RedisConnection.minimumVersion
const RECOMMENDED_VERSION = RedisConnection.recommendedMinimumVersion

const UNKNOWN = 'is unknown: INFO does not show it and CONFIG GET is renamed, disabled or not permitted on this server'
const PERSIST = 'in redis.conf (or your provider\'s parameter group) so a restart keeps it'
const LOSES = 'a Redis crash loses changes Sequin was already told were accepted'

/** Turns settings into problems and warnings; pure, so every rule is testable without a server. */
export function assessSettings (settings: RedisSettings, requireDurable: boolean): { problems: string[], warnings: string[] } {
  const problems: string[] = []
  const warnings: string[] = []
  const durability = requireDurable ? problems : warnings
  const { version, role, maxmemoryPolicy, appendonly, appendfsync } = settings

  if (!/^\d+\.\d+/.test(version)) {
    warnings.push(`Redis version is unknown (INFO shows "${version}"): BullMQ needs ${MINIMUM_VERSION} or newer and recommends ${RECOMMENDED_VERSION}`)
  } else if (isRedisVersionLowerThan(version, MINIMUM_VERSION, 'redis')) {
    problems.push(`Redis version is ${version}, BullMQ needs ${MINIMUM_VERSION} or newer: upgrade Redis (to ${RECOMMENDED_VERSION} or newer)`)
  } else if (isRedisVersionLowerThan(version, RECOMMENDED_VERSION, 'redis')) {
    warnings.push(`Redis version is ${version}, BullMQ recommends ${RECOMMENDED_VERSION} or newer: plan an upgrade`)
  }

  if (role !== 'master') {
    problems.push(`Redis role is ${role}, changeflow needs master: a replica cannot take writes. Point REDIS_URL at ` +
      'the primary, or promote this server with REPLICAOF NO ONE if it is meant to be the primary')
  }

  if (maxmemoryPolicy === null) {
    warnings.push(`maxmemory-policy ${UNKNOWN}. Make sure it is noeviction: an evicted key is a lost job or a forgotten duplicate`)
  } else if (maxmemoryPolicy !== 'noeviction') {
    problems.push(`maxmemory-policy is ${maxmemoryPolicy}, changeflow needs noeviction: an evicted key is a lost job ` +
      `or a forgotten duplicate. Fix: CONFIG SET maxmemory-policy noeviction, and set "maxmemory-policy noeviction" ${PERSIST}`)
  }

  if (appendonly === null) {
    warnings.push(`appendonly ${UNKNOWN}. Make sure it is yes (with appendfsync everysec or always), or ${LOSES}`)
  } else if (appendonly !== 'yes') {
    durability.push(`appendonly is ${appendonly}, durability needs yes: ${LOSES} (everything since the last RDB ` +
      `snapshot, if any). Fix: CONFIG SET appendonly yes, and set "appendonly yes" and "appendfsync everysec" ${PERSIST}`)
  }
  // With the append-only file off, appendfsync changes nothing: the warning above says it all.
  if (appendonly !== 'no') {
    if (appendfsync === null) {
      warnings.push(`appendfsync ${UNKNOWN}. Make sure it is everysec or always: with no, ${LOSES} in the last ~30 s`)
    } else if (appendfsync !== 'everysec' && appendfsync !== 'always') {
      durability.push(`appendfsync is ${appendfsync}, durability needs everysec or always: Redis leaves flushing to ` +
        `the OS, so ${LOSES} in the last ~30 s. Fix: CONFIG SET appendfsync everysec, and set "appendfsync everysec" ${PERSIST}`)
    }
  }
  return { problems, warnings }
}

function parseInfo (text: string): Map<string, string> {
  const fields = new Map<string, string>()
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1).trim())
  }
  return fields
}

/** A refused command (renamed, ACL, managed Redis) is an unknown setting; a broken connection is not. */
async function configGet (redis: Redis, name: string): Promise<string | null> {
  try {
    const reply = await redis.config('GET', name)
    return Array.isArray(reply) && reply.length >= 2 ? String(reply[1]) : null
  } catch (error) {
    if (error instanceof Error && error.name === 'ReplyError') return null
    throw error
  }
}

/** Reads the settings changeflow depends on. INFO works even where CONFIG is disabled, so it goes first. */
export async function readSettings (redis: Redis): Promise<RedisSettings> {
  const info = parseInfo(await redis.info())
  const aof = info.get('aof_enabled')
  return {
    version: info.get('redis_version') ?? 'unknown',
    role: info.get('role') ?? 'unknown',
    maxmemoryPolicy: info.get('maxmemory_policy') ?? await configGet(redis, 'maxmemory-policy'),
    appendonly: await configGet(redis, 'appendonly') ?? (aof === undefined ? null : aof === '1' ? 'yes' : 'no'),
    appendfsync: await configGet(redis, 'appendfsync'),
  }
}

/**
 * Checks Redis for what changeflow needs: a version BullMQ supports, a writable master,
 * noeviction, an append-only file synced at least every second, and no data loss since this
 * process first saw it. Throws only when Redis cannot be reached or INFO itself fails.
 */
export async function checkRedis (redis: RedisClient, options: CheckOptions): Promise<RedisCheck> {
  // On a cluster every master holds shards: each is checked, and named in what it is told.
  const servers: Redis[] = redis instanceof Cluster ? redis.nodes('master') : [redis]
  const problems: string[] = []
  const warnings: string[] = []
  const nodes: RedisCheck['nodes'] = []
  for (const server of servers) {
    const settings = await readSettings(server)
    const address = `${server.options.host ?? '?'}:${server.options.port ?? '?'}`
    nodes.push({ address, settings })
    const assessed = assessSettings(settings, options.requireDurable)
    const name = (text: string) => (redis instanceof Cluster ? `${address}: ${text}` : text)
    problems.push(...assessed.problems.map(name))
    warnings.push(...assessed.warnings.map(name))
  }
  const writable = nodes.every((node) => node.settings.role === 'master')
  let outcome: TripwireOutcome = 'skipped'
  for (const { key, state } of options.tripwires) {
    const tripwire = await checkTripwire(redis, key, state, writable)
    if (tripwire.problem !== null) problems.unshift(tripwire.problem)
    // The worst outcome of all the markers: lost, then created, then present.
    if (tripwire.outcome === 'lost' || (tripwire.outcome === 'created' && outcome !== 'lost') || outcome === 'skipped') outcome = tripwire.outcome
  }
  return { settings: nodes[0]!.settings, nodes, problems, warnings, tripwire: outcome }
}
