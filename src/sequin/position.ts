import type { SequinMetadata } from './message.ts'

/** A change's commit position `(commit_lsn, commit_idx)` as canonical decimal text. */
export type Position = readonly [lsn: string, idx: string]

/** Canonical decimal text (no leading zeros) of a whole number given as a number or digits. */
function decimal (value: number | string): string {
  return typeof value === 'number' ? String(value) : BigInt(value).toString()
}

/** The commit position of a CDC change; none for backfill reads (Sequin sends null there). */
export function positionOf (metadata: SequinMetadata): Position | undefined {
  const { commit_lsn: lsn, commit_idx: idx } = metadata
  return lsn == null || idx == null ? undefined : [decimal(lsn), decimal(idx)]
}

/** Compares canonical decimal texts exactly: a longer number is larger, then digit by digit. */
function compareDecimal (a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length
  return a < b ? -1 : a > b ? 1 : 0
}

/** Commit order; a change without a position (a backfill read) sorts after every CDC change. */
export function comparePositions (a: Position | undefined, b: Position | undefined): number {
  if (a === undefined || b === undefined) return (a === undefined ? 1 : 0) - (b === undefined ? 1 : 0)
  return compareDecimal(a[0], b[0]) || compareDecimal(a[1], b[1])
}
