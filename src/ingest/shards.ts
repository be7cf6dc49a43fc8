import { Cluster, type Redis } from 'ioredis'
import { keySlot, type Keyspace, type Layout } from '../keys.ts'
import type { RedisClient } from '../redis/connection.ts'
import { declaredKeys } from '../redis/declared-keys.ts'
import type { ScriptedRedis } from '../redis/scripts.ts'
import { commitPlan, type CommitLimits, type Committed } from './commit.ts'
import type { BatchPlan, PlannedChange } from './plan.ts'

/** Writes reached fewer replicas than REDIS_WAIT_REPLICAS in time: the batch is not acknowledged. */
export class ReplicationError extends Error {
  override name = 'ReplicationError'
}

export interface Replication {
  /** REDIS_WAIT_REPLICAS: 0 waits for none. */
  replicas: number
  timeoutMs: number
}

/**
 * A batch plan cut into one plan per shard: each change's runs go to the shard of their row (a
 * run without a row: of its change), its late-detection positions likewise, the quarantine to
 * the home shard, its journal entry to the first of its shards. `origin` maps each shard's
 * changes back to the batch's.
 */
export function splitPlan (plan: BatchPlan, layout: Layout): Array<{ plan: BatchPlan, origin: number[] }> {
  const parts = layout.shards.map(() => ({
    plan: { ...plan, changes: [] as PlannedChange[], quarantine: [] as BatchPlan['quarantine'], positions: [] as BatchPlan['positions'] },
    origin: [] as number[],
  }))
  parts[0]!.plan.quarantine = plan.quarantine
  plan.changes.forEach((change, index) => {
    const byShard = new Map<number, PlannedChange['jobs']>()
    for (const job of change.jobs) {
      const shard = layout.shardOf(job.row ?? change.changeId)
      byShard.set(shard, [...(byShard.get(shard) ?? []), job])
    }
    // Journalled once, in the first of its shards (trace and replay look in every shard), with
    // every workflow the change started: the entry's shard holds only some of its runs.
    const split = byShard.size > 1
    let journal = change.journal && split ? { ...change.journal, workflows: change.jobs.map((job) => job.queue) } : change.journal
    for (const [shard, jobs] of byShard) {
      parts[shard]!.plan.changes.push({ ...change, jobs, journal })
      parts[shard]!.origin.push(index)
      journal = undefined
    }
  })
  for (const position of plan.positions) parts[layout.shardOf(position.row)]!.plan.positions.push(position)
  return parts
}

/** The master connection that holds a shard's slot: WAIT counts the replicas of the writes made on it. */
function connectionOf (redis: RedisClient, keys: Keyspace): Redis {
  if (!(redis instanceof Cluster)) return redis
  const address = redis.slots[keySlot(keys.rows())]?.[0]
  const node = redis.nodes('master').find((candidate) => `${candidate.options.host}:${candidate.options.port}` === address)
  if (!node) throw new ReplicationError(`no master known for the slot of ${keys.bullPrefix}: the cluster is changing`)
  return node
}

async function confirm (redis: RedisClient, keys: Keyspace, replication: Replication): Promise<void> {
  if (replication.replicas === 0) return
  const confirmed = Number(await connectionOf(redis, keys).call('WAIT', replication.replicas, replication.timeoutMs))
  if (confirmed < replication.replicas) {
    throw new ReplicationError(`the writes reached ${confirmed} of ${replication.replicas} replicas within ${replication.timeoutMs} ms (REDIS_WAIT_REPLICAS)`)
  }
}

/**
 * A change whose runs live in another shard than its primary-key row (rows of a workflow's own
 * `key`) cannot tell there whether it is late: that is decided first, in the primary-key row's
 * shard, and carried to every part (see lua/late.lua).
 */
async function decideLateness (redis: ScriptedRedis, layout: Layout, plan: BatchPlan, ttlMs: number): Promise<BatchPlan> {
  const remote = new Map<number, Array<{ index: number, id: string, row: string, version: NonNullable<PlannedChange['version']> }>>()
  plan.changes.forEach((change, index) => {
    const pkRow = change.jobs[0]?.pkRow
    if (!change.version || !pkRow) return
    const home = layout.shardOf(pkRow)
    if (change.jobs.every((job) => layout.shardOf(job.row ?? change.changeId) === home)) return
    remote.set(home, [...(remote.get(home) ?? []), { index, id: change.changeId, row: pkRow, version: change.version }])
  })
  if (remote.size === 0) return plan
  const changes = [...plan.changes]
  await Promise.all([...remote].map(async ([shard, items]) => {
    const keys = layout.shards[shard]!
    const declared = declaredKeys(redis, keys.tripwire(), () => items.flatMap((item) => [keys.seen(item.id), keys.rowVersion(item.row)]))
    const verdicts = await redis.cfLate(declared.length, ...declared, JSON.stringify({
      own: keys.own,
      ttl: ttlMs,
      items: items.map(({ id, row, version }) => ({ id, row, version })),
    }))
    items.forEach((item, i) => { changes[item.index] = { ...changes[item.index]!, late: verdicts[i] === 1 } })
  }))
  return { ...plan, changes }
}

/**
 * Writes a batch plan over the shards: each shard's part atomically per change (see commitPlan),
 * the parts in parallel, the home shard's first when it holds quarantined messages (a full
 * quarantine then refuses the batch before any of it is written). Resolves only when every part
 * was written, and confirmed by REDIS_WAIT_REPLICAS replicas: otherwise it rejects, the caller
 * answers non-2xx, and Sequin's redelivery finds the parts that did land as duplicates.
 */
export async function commitBatch (redis: ScriptedRedis, layout: Layout, batch: BatchPlan, limits: CommitLimits, now: number, replication: Replication, signal?: AbortSignal): Promise<Committed> {
  const writePart = async (keys: Keyspace, part: BatchPlan): Promise<Committed> => {
    const committed = await commitPlan(redis, keys, part, limits, now, signal)
    const wrote = part.changes.length + part.quarantine.length + part.positions.length > 0
    if (committed.ok && wrote) await confirm(redis, keys, replication)
    return committed
  }
  if (layout.shards.length === 1) return writePart(layout.shards[0]!, batch)
  const plan = await decideLateness(redis, layout, batch, limits.dedupTtlMs)
  const parts = splitPlan(plan, layout)
  const write = (shard: number) => writePart(layout.shards[shard]!, parts[shard]!.plan)
  const home = plan.quarantine.length > 0 ? await write(0) : null
  if (home && !home.ok) return home
  const others = await Promise.all(parts.map((_, shard) => shard).filter((shard) => !(home && shard === 0)).map(async (shard) => [shard, await write(shard)] as const))
  const results = home ? [[0, home] as const, ...others] : others

  const merged: Committed = { ok: true, accepted: plan.changes.map(() => false), jobs: 0, late: 0, skipped: 0, dropped: 0 }
  for (const [shard, result] of results) {
    if (!result.ok) return result
    // A change counts as accepted when any of its shards took something new of it.
    result.accepted.forEach((fresh, i) => { if (fresh) merged.accepted[parts[shard]!.origin[i]!] = true })
    merged.jobs += result.jobs
    merged.late += result.late
    merged.skipped += result.skipped
    merged.dropped += result.dropped
  }
  return merged
}
