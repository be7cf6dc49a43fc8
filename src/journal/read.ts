import type { Keyspace } from '../keys.ts'
import type { RedisClient } from '../redis/connection.ts'
import type { SequinMessage } from '../sequin/message.ts'
import { journalRowId } from '../ingest/identity.ts'

/** One journalled change, as `trace` and `replay` read it. */
export interface JournalEntry {
  /** The stream entry id: `<ms accepted>-<seq>`. */
  entry: string
  acceptedAt: number
  changeId: string
  /** The workflows the change was routed to when accepted (each a run). */
  workflows: string[]
  /** The Sequin message, as job data holds it. */
  message: SequinMessage
  /** The shard whose journal holds it. */
  shard: number
}

type RawEntry = [id: string, fields: string[]]

function parseEntry ([entry, fields]: RawEntry, shard: number): JournalEntry {
  const field: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) field[fields[i]!] = fields[i + 1]!
  return {
    entry,
    acceptedAt: Number(entry.slice(0, entry.indexOf('-'))),
    changeId: field.i ?? '',
    workflows: field.w ? field.w.split(',') : [],
    message: JSON.parse(field.c ?? 'null') as SequinMessage,
    shard,
  }
}

/**
 * The journalled changes of a row (table name and primary key, of any schema and source), oldest
 * first, from every shard's index: entries accepted before `since` (past JOURNAL_RETENTION, not
 * yet trimmed) are left out, and so are ids whose entry the length bound trimmed.
 */
export async function rowEntries (redis: RedisClient, shards: readonly Keyspace[], table: string, key: readonly string[], since: number): Promise<JournalEntry[]> {
  const row = journalRowId(table, key)
  const found: JournalEntry[] = []
  for (const [shard, keys] of shards.entries()) {
    const ids = await redis.lrange(keys.journalRow(row), 0, -1)
    const live = ids.filter((id) => Number(id.slice(0, id.indexOf('-'))) >= since)
    if (live.length === 0) continue
    const pipeline = redis.pipeline()
    for (const id of live) pipeline.xrange(keys.journal(), id, id)
    for (const [error, entries] of (await pipeline.exec()) ?? []) {
      if (error) throw error
      for (const raw of entries as RawEntry[]) found.push(parseEntry(raw, shard))
    }
  }
  return found.sort((a, b) => a.acceptedAt - b.acceptedAt)
}

/**
 * Every entry of a shard's journal accepted at or after `since`, up to `until` (an entry id,
 * included; the stream's end when absent), oldest first, a page at a time (what `replay` selects
 * from). A change is accepted after it was committed, so a commit-time window starts no earlier
 * than its start.
 */
export async function * scanJournal (redis: RedisClient, keys: Keyspace, shard: number, since: number, until = '+', pageSize = 500): AsyncGenerator<JournalEntry> {
  let from = String(since)
  for (;;) {
    const page = await redis.xrange(keys.journal(), from, until, 'COUNT', pageSize) as RawEntry[]
    for (const raw of page) yield parseEntry(raw, shard)
    if (page.length < pageSize) return
    from = `(${page.at(-1)![0]}`
  }
}

/** The id of a shard's newest journal entry, or null when its journal is empty. */
export async function lastEntryId (redis: RedisClient, keys: Keyspace): Promise<string | null> {
  const [newest] = await redis.xrevrange(keys.journal(), '+', '-', 'COUNT', 1) as RawEntry[]
  return newest?.[0] ?? null
}
