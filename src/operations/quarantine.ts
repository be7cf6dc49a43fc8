import { Queue, type Job } from 'bullmq'
import type { RedisClient } from '../redis/connection.ts'
import { QUARANTINE_QUEUE, type Keyspace } from '../keys.ts'
import type { QuarantineJobData } from '../ingest/job-data.ts'

export interface QuarantinedMessage {
  jobId: string
  /** Why it was kept: `invalid-message` or `routing-error` (the job's name). */
  reason: string
  /** Its position in the batch it arrived in. */
  index: number
  receivedAt: string
  error: string
}

/** The quarantine queue on a shared connection; close it when done. */
export function quarantineQueue (connection: RedisClient, keys: Keyspace): Queue {
  return new Queue(QUARANTINE_QUEUE, { connection, prefix: keys.bullPrefix })
}

/** Messages whose last validation (on arrival or on a redrive) failed: they wait for an operator. */
export async function quarantinedMessages (queue: Queue): Promise<QuarantinedMessage[]> {
  const failed: Array<Job<QuarantineJobData>> = await queue.getFailed()
  return failed.map((job) => ({
    jobId: job.id!,
    reason: job.name,
    index: job.data.index,
    receivedAt: job.data.receivedAt,
    error: job.failedReason,
  }))
}

/** Ids of every quarantined message, without loading the messages themselves. */
export function quarantinedIds (queue: Queue): Promise<string[]> {
  return queue.getRanges(['failed'], 0, -1)
}

/**
 * Puts a quarantined message back in the queue. The worker that picks it up re-ingests it
 * through validation, routing and deduplication; if it is still invalid it fails again and
 * stays quarantined with its new error.
 */
export async function redriveMessage (queue: Queue, jobId: string): Promise<void> {
  // job.retry itself refuses a job that is not failed; the check says why.
  await (await quarantinedJob(queue, jobId, 'redriven')).retry('failed')
}

/** A message still quarantined (a failed job of the queue): anything else cannot be acted on. */
async function quarantinedJob (queue: Queue, jobId: string, verb: string): Promise<Job> {
  const job = await queue.getJob(jobId)
  if (!job) throw new Error(`no quarantined message ${jobId}`)
  const state = await job.getState()
  if (state !== 'failed') throw new Error(`message ${jobId} is ${state}: only a failed (quarantined) message can be ${verb}`)
  return job
}

/** Removes a quarantined message for good (the operator decided it should never run). */
export async function dropMessage (queue: Queue, jobId: string): Promise<void> {
  await (await quarantinedJob(queue, jobId, 'dropped')).remove()
}
