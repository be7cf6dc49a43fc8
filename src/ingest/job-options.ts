import type { Config } from '../config.ts'
import type { Workflow } from '../workflows/define.ts'
import type { JobOptions } from './plan.ts'

type RetentionConfig = Pick<Config, 'STEP_ATTEMPTS' | 'STEP_BACKOFF' | 'KEEP_COMPLETED' | 'KEEP_COMPLETED_AGE'>

/**
 * BullMQ options of every step job, as JSON, computed once. Completed jobs are trimmed by age
 * and count (their dedup outlives them); failed jobs stay until an operator acts.
 */
export function createJobOptions (workflows: readonly Workflow[], config: RetentionConfig): JobOptions {
  const removeOnComplete = { age: Math.ceil(config.KEEP_COMPLETED_AGE / 1000), count: config.KEEP_COMPLETED }
  const byStep = new Map<string, string>()
  for (const workflow of workflows) {
    for (const step of workflow.steps) {
      byStep.set(`${workflow.name}/${step.name}`, JSON.stringify({
        attempts: step.attempts ?? config.STEP_ATTEMPTS,
        backoff: step.backoff ?? { type: 'exponential', delay: config.STEP_BACKOFF },
        removeOnComplete,
        removeOnFail: false,
      }))
    }
  }
  return {
    step (workflow, step) {
      const opts = byStep.get(`${workflow}/${step}`)
      if (opts === undefined) throw new Error(`no step ${step} in workflow ${workflow}`)
      return opts
    },
    quarantine: JSON.stringify({ attempts: 1, removeOnComplete, removeOnFail: false }),
  }
}
