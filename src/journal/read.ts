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
 * Entries of a journal deleted before a scan read them: those after the entry `after` and before
 * the entry `before` (null: up to the journal's newest entry when the scan began). The journal
 * trimmed them (its length or age bound) while the scan was on its way, or they were deleted.
 */
export interface JournalGap {
  shard: number
  after: string
  before: string | null
}

/**
 * Every entry of a shard's journal accepted at or after `since` when the scan began (entries
 * added after its first read are not part of it), oldest first, a page at a time (what `replay`
 * selects from). A change is accepted after it was committed, so a commit-time window starts no
 * earlier than its start. Each page reads one entry more than it yields, the next page's first:
 * when that entry is gone by the next read, the entries from it up to the first one left were
 * deleted before the scan reached them, and are reported to `gap`; so is a last page that ends
 * before the scan's end. Trimming (the journal's bounds) removes the oldest entries first, so
 * this notices every entry it took; an entry deleted on its own (XDEL) after an entry that is
 * still there is not noticed.
 */
export async function * scanJournal (redis: RedisClient, keys: Keyspace, shard: number, since: number, gap: (gap: JournalGap) => void = () => {}, pageSize = 500): AsyncGenerator<JournalEntry> {
  const key = keys.journal()
  // The newest entry and the first page in one step: the scan's end, and its start.
  const [[lastError, newest], [pageError, first]] = await redis.multi().xrevrange(key, '+', '-', 'COUNT', 1).xrange(key, since, '+', 'COUNT', pageSize + 1).exec() as
    [[Error | null, RawEntry[]], [Error | null, RawEntry[]]]
  if (lastError ?? pageError) throw lastError ?? pageError
  const until = newest[0]?.[0]
  if (until === undefined) return
  let page = first
  let read: string | undefined // the last entry yielded
  for (;;) {
    for (const raw of page.slice(0, pageSize)) {
      read = raw[0]
      yield parseEntry(raw, shard)
    }
    const next = page[pageSize]?.[0]
    if (next === undefined) {
      // The last page, which ends at the scan's end, unless the journal lost its newest entries
      // meanwhile (replaced by an older copy: a failover to a replica that lagged).
      if (page.length > 0 && read !== until) gap({ shard, after: read!, before: null })
      return
    }
    page = await redis.xrange(key, next, until, 'COUNT', pageSize + 1) as RawEntry[]
    const found = page[0]?.[0]
    if (found !== next) gap({ shard, after: read!, before: found ?? null })
  }
}
