import { QueueKeys } from 'bullmq'

export const QUARANTINE_QUEUE = 'quarantine'

/**
 * Every key lives under one hash tag, `{<prefix>}`, so each multi-key script touches a single
 * Redis Cluster slot. BullMQ's queues use the same tag as their prefix.
 */
export class Keyspace {
  readonly bullPrefix: string
  readonly #queueKeys: QueueKeys
  readonly #own: string
  readonly #cache = new Map<string, Record<string, string>>()

  constructor (prefix: string) {
    this.bullPrefix = `{${prefix}}`
    this.#queueKeys = new QueueKeys(this.bullPrefix)
    // `_` cannot start a workflow (queue) name, so these never meet BullMQ's keys.
    this.#own = `${this.bullPrefix}:_cf`
  }

  queue (name: string): Record<string, string> {
    let keys = this.#cache.get(name)
    if (!keys) {
      keys = this.#queueKeys.getKeys(name)
      this.#cache.set(name, keys)
    }
    return keys
  }

  /** The 9 keys of BullMQ's add-job script, in its order, and the job-key prefix. */
  addJobKeys (queue: string): { keys: string[], prefix: string } {
    const k = this.queue(queue)
    return {
      keys: [k.wait!, k.paused!, k.meta!, k.id!, k.completed!, k.delayed!, k.active!, k.events!, k.marker!],
      prefix: k['']!,
    }
  }

  seen (changeId: string): string {
    return `${this.#own}:seen:${changeId}`
  }

  run (runId: string): string {
    return `${this.#own}:run:${runId}`
  }
}
