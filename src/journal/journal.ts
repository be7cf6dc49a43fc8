import type { Config } from '../config.ts'

/**
 * The change journal: every accepted change, kept in its shard's stream (`Keyspace.journal`) for
 * JOURNAL_RETENTION and at most JOURNAL_MAX_LEN entries, written by the ingest script in the
 * same atomic step as the change's acceptance (a duplicate writes nothing). An entry holds the
 * change id (`i`), the workflows it was routed to (`w`) and the Sequin message as job data
 * holds it (`c`): table, action, primary key and commit position and time are read from it.
 * Each row (table name and primary key) keeps its entries' ids in an index (`Keyspace.journalRow`)
 * for `trace`; `replay` reads the streams.
 */
export interface JournalBounds {
  retentionMs: number
  /** Entries per shard, at most (trimmed by whole stream nodes: a little more may stay). */
  maxLen: number
}

/** Most entry ids a row's index keeps (the newest): a row changed a million times costs no more. */
export const JOURNAL_ROW_ENTRIES = 1_000

/** The journal's bounds, or undefined when it is off (JOURNAL_RETENTION=0). */
export function journalBounds (config: Pick<Config, 'JOURNAL_RETENTION' | 'JOURNAL_MAX_LEN'>): JournalBounds | undefined {
  return config.JOURNAL_RETENTION > 0 ? { retentionMs: config.JOURNAL_RETENTION, maxLen: config.JOURNAL_MAX_LEN } : undefined
}

/** What the ingest script gets: numbers as text, which Redis would otherwise format per command. */
export function journalArgs (bounds: JournalBounds, now: number) {
  return {
    // Entries accepted before this go (whole stream nodes at a time: `~`).
    minId: String(Math.max(0, now - bounds.retentionMs)),
    maxLen: String(bounds.maxLen),
    keep: String(bounds.retentionMs),
    rowMax: JOURNAL_ROW_ENTRIES,
  }
}
