import { Job, Worker, raw2NextJobData, type RedisQueueBackend } from 'bullmq'
import { FINISH_KEYS, type ScriptedRedis } from '../redis/scripts.ts'
import type { StepJobData } from '../ingest/plan.ts'

/** A step's completion as the step runner planned it: the advance script's keys and arguments. */
export interface StepCompletion {
  redis: ScriptedRedis
  /** The run's record first, then (on a cluster) every other key the script may touch. */
  keys: readonly string[]
  args: ReadonlyArray<string | number>
  /** Called once the script ran: the step's metrics and log line. */
  recorded: () => void
}

/**
 * A step job whose completion records its result, releases what comes next and moves the job to
 * completed in one script (lua/complete.lua), instead of the runner's script and then BullMQ's:
 * one round trip, where BullMQ's `moveToCompleted` alone is one. The runner sets `completion`;
 * a job without one completes as BullMQ completes any job.
 */
export class StepJob extends Job<StepJobData> {
  completion?: StepCompletion

  override async moveToCompleted (returnValue: unknown, token: string, fetchNext = true): Promise<void | any[]> {
    const completion = this.completion
    if (!completion) return super.moveToCompleted(returnValue, token, fetchNext)
    const backend = this.backend as unknown as RedisQueueBackend
    // As BullMQ's moveToCompleted, with our script in place of its own.
    await this.queue.waitUntilReady()
    this.returnvalue = (returnValue || undefined) as never
    const json = JSON.stringify(returnValue)
    // removeOnComplete as the job has it, unset included: unset means the worker's setting.
    const finish = backend.moveToCompletedArgs(this, json, this.opts.removeOnComplete as boolean, token, fetchNext)
    const finishArgs = finish.slice(FINISH_KEYS).map((arg) => arg ?? '')
    const result = await completion.redis.cfComplete(
      FINISH_KEYS + completion.keys.length, ...finish.slice(0, FINISH_KEYS) as string[], ...completion.keys,
      finishArgs.length, ...finishArgs as Array<string | number>, ...completion.args
    )
    if (typeof result === 'number' && result < 0) {
      throw backend.finishedErrors({ code: result, jobId: this.id, command: 'moveToFinished', state: 'active' })
    }
    completion.recorded()
    this.finishedOn = finish[FINISH_KEYS + 1] as number
    this.attemptsMade += 1
    return raw2NextJobData(result as any[])
  }
}

/** A BullMQ worker whose jobs are StepJobs. */
export class StepWorker extends Worker<StepJobData> {
  override get Job (): typeof Job {
    return StepJob as unknown as typeof Job
  }
}
