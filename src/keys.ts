import { QueueKeys } from 'bullmq'
import calculateSlot from 'cluster-key-slot'

export const QUARANTINE_QUEUE = 'quarantine'

/**
 * The keys of one shard: every key lives under one hash tag, `{<tag>}`, so each multi-key script
 * touches a single Redis Cluster slot. BullMQ's queues use the same tag as their prefix. The Lua
 * scripts build the same names (see lua/prelude.lua). With one shard the tag is REDIS_PREFIX.
 */
export class Keyspace {
  readonly bullPrefix: string
  /** Prefix of changeflow's own keys; `_` cannot start a queue name, so they never meet BullMQ's. */
  readonly own: string
  readonly #queueKeys: QueueKeys
  /** The home shard's keys (the queue registry lives there): itself, unless a Layout says otherwise. */
  home: Keyspace = this

  constructor (tag: string) {
    this.bullPrefix = `{${tag}}`
    this.own = `${this.bullPrefix}:_cf`
    this.#queueKeys = new QueueKeys(this.bullPrefix)
  }

  queue (name: string): Record<string, string> {
    return this.#queueKeys.getKeys(name)
  }

  /**
   * The keys of a queue that changeflow's scripts (and BullMQ's add-job script within them) may
   * touch: declared to Redis on a cluster, so that a script never runs against a slot whose keys
   * are half moved (see src/redis/declared-keys.ts).
   */
  queueKeysTouched (name: string): string[] {
    const keys = this.queue(name)
    return TOUCHED.map((type) => keys[type]!)
  }

  job (queue: string, jobId: string): string {
    return `${this.bullPrefix}:${queue}:${jobId}`
  }

  /**
   * A change's dedup hash: field `_` while the change is deduplicated, and a field per finished
   * run. Short segment names: a key name is paid for by every change (a few bytes cross a
   * memory allocation size).
   */
  seen (changeId: string): string {
    return `${this.own}:s:${changeId}`
  }

  /** The newest commit position accepted for a row (late detection). */
  rowVersion (row: string): string {
    return `${this.own}:v:${row}`
  }

  run (runId: string): string {
    return `${this.own}:run:${runId}`
  }

  rowQueue (rowId: string): string {
    return `${this.own}:rowq:${rowId}`
  }

  /**
   * The shard's change journal: a stream of accepted changes (src/journal), trimmed by age
   * (JOURNAL_RETENTION) and length (JOURNAL_MAX_LEN).
   */
  journal (): string {
    return `${this.own}:journal`
  }

  /** A row's journal entries (stream ids), for `trace`: the row of a table name and primary key, any source. */
  journalRow (journalRowId: string): string {
    return `${this.own}:jr:${journalRowId}`
  }

  /** The last replay generation handed out (home shard): each `replay --force` takes the next. */
  replayGeneration (): string {
    return `${this.own}:replay-generation`
  }

  /** The shard's data-loss marker: written once, never expired; gone means Redis lost data. */
  tripwire (): string {
    return `${this.own}:tripwire`
  }

  /** Rows with a run waiting behind another, scored by when their head last moved. */
  rows (): string {
    return `${this.own}:rows`
  }

  /**
   * Rows whose head cannot move, scored by since when: its current step failed for good
   * (`failed`), or its job waits in a queue no worker consumes (`orphaned`).
   */
  blocked (reason: BlockReason): string {
    return `${this.own}:blocked:${reason}`
  }

  /** Every queue work was ever added to: how a deployment finds queues it does not define. */
  queues (): string {
    return `${this.own}:queues`
  }

  /** Workflows an operator gave up (discard-workflow): their runs are not started any more. */
  discardedQueues (): string {
    return `${this.own}:discarded-queues`
  }

  /** Operator actions (retry, discard, redrive, ...) counted by name: the web's /metrics reads them. */
  operatorActions (): string {
    return `${this.own}:ops`
  }

  /** The operators' log: a bounded stream, one entry per action, with what it acted on and who did it. */
  operatorLog (): string {
    return `${this.own}:ops-log`
  }

  /** Queues scored by the last time a worker process said it consumes them. */
  consumers (): string {
    return `${this.own}:consumers`
  }
}

export const BLOCK_REASONS = ['failed', 'orphaned'] as const
export type BlockReason = (typeof BLOCK_REASONS)[number]

const TOUCHED = ['wait', 'paused', 'meta', 'id', 'completed', 'delayed', 'active', 'events', 'marker', 'failed']

/** Redis Cluster's slots: a key's slot is CRC16 of its hash tag, modulo this. */
const SLOTS = 16_384

/**
 * The hash tags of `count` shards. One shard keeps the historical layout, `{prefix}`. Several
 * shards get tags chosen so that their slots spread evenly over the slot space: shard i's slot
 * lies in the i-th of `count` equal slices, so with masters owning equal slot ranges (as
 * `redis-cli --cluster create` makes them) and `count` a multiple of the masters, each master
 * holds as many shards as the others.
 */
export function shardTags (prefix: string, count: number): string[] {
  if (count === 1) return [prefix]
  return Array.from({ length: count }, (_, shard) => {
    const from = Math.floor((shard * SLOTS) / count)
    const to = Math.floor(((shard + 1) * SLOTS) / count)
    for (let k = 0; ; k++) {
      const tag = `${prefix}-${shard}-${k}`
      const slot = keySlot(`{${tag}}`)
      if (slot >= from && slot < to) return tag
    }
  })
}

export function keySlot (key: string): number {
  return calculateSlot(key)
}

/**
 * Where a change's keys live. Every key of one shard shares its hash tag, so each script touches
 * one Cluster slot; a row (and with it its dedup marks, late-detection state, queue and runs'
 * jobs) lives in the shard its identity picks. Shard 0 also holds what is one per keyspace: the
 * quarantine, the queue registry, worker heartbeats and discarded workflows. The layout itself
 * is recorded under `{prefix}`, whatever the count.
 */
export class Layout {
  readonly shards: readonly Keyspace[]
  readonly prefix: string

  constructor (prefix: string, count = 1) {
    this.prefix = prefix
    this.shards = shardTags(prefix, count).map((tag) => new Keyspace(tag))
    for (const keys of this.shards) keys.home = this.shards[0]!
  }

  get home (): Keyspace {
    return this.shards[0]!
  }

  /** The shard of an identity (a row id, or a change id for a change without a row): a digest. */
  shardOf (id: string): number {
    if (this.shards.length === 1) return 0
    // Ids are base64url digests: their first 32 bits (6 characters) are as good as any hash of them.
    return Buffer.from(id.slice(0, 6).padEnd(6, 'A'), 'base64url').readUInt32BE(0) % this.shards.length
  }

  /** Where the record of the layout lives: fixed, so that a different shard count is noticed. */
  recordKey (): string {
    return `{${this.prefix}}:_cf:layout`
  }
}
