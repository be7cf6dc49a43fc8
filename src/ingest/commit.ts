import type { Keyspace } from '../keys.ts'
import type { ScriptedRedis } from '../redis/scripts.ts'
import type { BatchPlan, JobSpec } from './plan.ts'

export interface Committed {
  /** Per planned change: true when it was new, false when already seen. */
  accepted: boolean[]
  jobs: number
}

interface LuaJob { q: number, id: string, n: string, d: number, o: number }

/**
 * Writes a batch plan in one script call: one round trip, and atomic, so a failure anywhere
 * leaves nothing half-written for Sequin's redelivery to trip over.
 */
export async function commitPlan (redis: ScriptedRedis, keys: Keyspace, plan: BatchPlan, dedupTtlMs: number, now: number): Promise<Committed> {
  const redisKeys: string[] = plan.changes.map((change) => keys.seen(change.changeId))
  const argv: string[] = ['']
  const queues = new Map<string, number>()
  const queueList: Array<{ k: number, p: string }> = []
  const opts = new Map<string, number>()

  const index = (job: JobSpec): LuaJob => {
    let q = queues.get(job.queue)
    if (q === undefined) {
      const { keys: queueKeys, prefix } = keys.addJobKeys(job.queue)
      queueList.push({ k: redisKeys.length + 1, p: prefix })
      redisKeys.push(...queueKeys)
      q = queueList.length
      queues.set(job.queue, q)
    }
    let o = opts.get(job.opts)
    if (o === undefined) {
      o = opts.size + 1
      opts.set(job.opts, o)
    }
    argv.push(job.data)
    return { q, id: job.id, n: job.name, d: argv.length, o }
  }

  const luaPlan = {
    now: String(now),
    ttl: dedupTtlMs,
    changes: plan.changes.map((change, i) => ({ s: i + 1, j: change.jobs.map(index) })),
    quarantine: plan.quarantine.map(index),
    queues: queueList,
    opts: [...opts.keys()],
  }
  argv[0] = JSON.stringify(luaPlan)
  if (plan.changes.length === 0 && plan.quarantine.length === 0) return { accepted: [], jobs: 0 }

  const flags = await redis.cfIngest(redisKeys.length, ...redisKeys, ...argv)
  return { accepted: flags.slice(0, -1).map((flag) => flag === 1), jobs: flags.at(-1) ?? 0 }
}
