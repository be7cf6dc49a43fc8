import type { Keyspace } from '../keys.ts'
import type { RedisClient } from '../redis/connection.ts'
import { parseMessage, type SequinMetadata } from '../sequin/message.ts'
import { changeId, contentFingerprint } from './identity.ts'

/** How many accepted change ids a web process remembers: about 5 MB. */
export const RECENT_CHANGES = 50_000

/**
 * The changes this process wrote (accepted or found duplicate), by id, with their content's
 * fingerprint, newest last, at most `limit`. Only a hint: Redis still says whether a change is a
 * duplicate.
 */
export class RecentChanges {
  private readonly changes = new Map<string, string>()

  constructor (private readonly limit = RECENT_CHANGES) {}

  has (id: string): boolean {
    return this.changes.has(id)
  }

  fingerprint (id: string): string | undefined {
    return this.changes.get(id)
  }

  add (id: string, fingerprint: string): void {
    this.changes.delete(id)
    this.changes.set(id, fingerprint)
    if (this.changes.size > this.limit) this.changes.delete(this.changes.keys().next().value!)
  }
}

export interface Redelivered {
  /** `schema.table` and action of each message, as metric labels. */
  changes: Array<{ table: string, action: string }>
}

/**
 * A redelivery (Sequin retried a batch whose answer it did not get) is answered without
 * planning or writing anything when every message is valid, is exactly (the same JSON) a change
 * this process planned and wrote recently, and its dedup mark is still in Redis: the same
 * message plans the same way, and the ingest script would find it a duplicate. Anything else (a
 * new change, another message under a known identity, an invalid one, a mark gone) returns null,
 * and the batch takes the full path. One shard only: on several, a change's marks live in the
 * shards of its runs.
 */
export async function asRedelivery (messages: readonly unknown[], recent: RecentChanges, redis: RedisClient, keys: Keyspace): Promise<Redelivered | null> {
  // First a glance at each message's identity, unvalidated: a new batch leaves here at once,
  // before any validation (planning validates it in full).
  for (const raw of messages) {
    const metadata = (raw as { metadata?: unknown } | null)?.metadata
    if (metadata === null || typeof metadata !== 'object') return null
    let id: string
    try {
      id = changeId(metadata as SequinMetadata)
    } catch {
      return null // a key JSON made of an object that cannot be text: planning quarantines it
    }
    if (!recent.has(id)) return null
  }
  const ids: string[] = []
  const changes: Redelivered['changes'] = []
  for (const raw of messages) {
    const parsed = parseMessage(raw)
    if (!parsed.ok) return null
    const id = changeId(parsed.message.metadata)
    let json: string
    try {
      json = JSON.stringify(parsed.message) // as planning serialises it
    } catch {
      return null
    }
    if (recent.fingerprint(id) !== contentFingerprint(json)) return null
    ids.push(id)
    const { metadata, action } = parsed.message
    changes.push({ table: `${metadata.table_schema}.${metadata.table_name}`, action })
  }
  let marks: Array<[Error | null, unknown]> | null
  try {
    marks = await redis.pipeline(ids.map((id) => ['hexists', keys.seen(id), '_'])).exec()
  } catch {
    return null // the full path meets the same trouble, and answers it
  }
  return marks?.every(([error, found]) => error === null && found === 1) ? { changes } : null
}
