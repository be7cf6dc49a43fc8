import type { Action, SequinMessage, SequinMetadata } from '../sequin/message.ts'

/** What a workflow's `when` and steps see of one Sequin change. */
export interface Change {
  readonly action: Action
  readonly schema: string
  readonly table: string
  readonly record: Readonly<Record<string, unknown>>
  readonly changes: Readonly<Record<string, unknown>> | null
  readonly metadata: SequinMetadata
  /**
   * False only for an update whose old values are unknown: Sequin sends `changes: {}` when the
   * table lacks REPLICA IDENTITY FULL (or for a no-op update).
   */
  readonly changesKnown: boolean
  /** Older than a change already accepted for the same row (see the workflow's `late`). */
  readonly late: boolean
  /** Did this column change? Inserts and deletes change every column; reads change none. */
  changed (column: string): boolean
  /** The column's value before the change (undefined when there was none or it is unknown). */
  old (column: string): unknown
}

export function toChange (message: SequinMessage, late = false): Change {
  const { action, record, changes, metadata } = message
  const changesKnown = action !== 'update' || (changes !== null && Object.keys(changes).length > 0)
  return {
    action,
    schema: metadata.table_schema,
    table: metadata.table_name,
    record,
    changes,
    metadata,
    changesKnown,
    late,
    changed (column) {
      switch (action) {
        case 'insert':
        case 'delete':
          return Object.hasOwn(record, column)
        case 'update':
          return changes !== null && Object.hasOwn(changes, column)
        case 'read':
          return false
      }
    },
    old (column) {
      switch (action) {
        case 'delete':
          return record[column]
        case 'update':
          if (changes !== null && Object.hasOwn(changes, column)) return changes[column]
          return changesKnown ? record[column] : undefined
        default:
          return undefined
      }
    },
  }
}
