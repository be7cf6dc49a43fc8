import { QueueKeys } from 'bullmq'

export const QUARANTINE_QUEUE = 'quarantine'

/**
 * Every key lives under one hash tag, `{<prefix>}`, so each multi-key script touches a single
 * Redis Cluster slot. BullMQ's queues use the same tag as their prefix. The Lua scripts build
 * the same names (see lua/prelude.lua).
 */
export class Keyspace {
  readonly bullPrefix: string
  /** Prefix of changeflow's own keys; `_` cannot start a queue name, so they never meet BullMQ's. */
  readonly own: string
  readonly #queueKeys: QueueKeys

  constructor (prefix: string) {
    this.bullPrefix = `{${prefix}}`
    this.own = `${this.bullPrefix}:_cf`
    this.#queueKeys = new QueueKeys(this.bullPrefix)
  }

  queue (name: string): Record<string, string> {
    return this.#queueKeys.getKeys(name)
  }

  job (queue: string, jobId: string): string {
    return `${this.bullPrefix}:${queue}:${jobId}`
  }

  seen (changeId: string): string {
    return `${this.own}:seen:${changeId}`
  }

  run (runId: string): string {
    return `${this.own}:run:${runId}`
  }

  rowQueue (rowId: string): string {
    return `${this.own}:rowq:${rowId}`
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

  /** Queues scored by the last time a worker process said it consumes them. */
  consumers (): string {
    return `${this.own}:consumers`
  }
}

export const BLOCK_REASONS = ['failed', 'orphaned'] as const
export type BlockReason = (typeof BLOCK_REASONS)[number]
