import type { Keyspace } from '../keys.ts'
import type { ScriptedRedis } from '../redis/scripts.ts'
import type { BatchPlan, JobSpec } from './plan.ts'

export interface Committed {
  /** Per planned change: true when it was new, false when already seen. */
  accepted: boolean[]
  jobs: number
  /** Runs of changes older than their row's newest: started (and marked) or skipped. */
  late: number
  skipped: number
}

/**
 * Writes a batch plan in one script call: one round trip, and atomic, so a failure anywhere
 * leaves nothing half-written for Sequin's redelivery to trip over.
 */
export async function commitPlan (redis: ScriptedRedis, keys: Keyspace, plan: BatchPlan, dedupTtlMs: number, now: number): Promise<Committed> {
  if (plan.changes.length === 0 && plan.quarantine.length === 0) return { accepted: [], jobs: 0, late: 0, skipped: 0 }
  const argv: string[] = ['']
  const queues = new Set<string>()
  const opts = new Map<string, number>()

  const lua = (job: JobSpec) => {
    queues.add(job.queue)
    let o = opts.get(job.opts)
    if (o === undefined) {
      o = opts.size + 1
      opts.set(job.opts, o)
    }
    argv.push(job.data)
    return { q: job.queue, id: job.id, n: job.name, d: argv.length, o, run: job.run, row: job.row, pk: job.pkRow, ord: job.ordered, skip: job.skipLate }
  }

  const changes = plan.changes.map((change) => ({ s: change.changeId, v: change.version, j: change.jobs.map(lua) }))
  const quarantine = plan.quarantine.map(lua)
  argv[0] = JSON.stringify({
    bull: keys.bullPrefix,
    own: keys.own,
    now: String(now),
    ttl: dedupTtlMs,
    queues: [...queues],
    opts: [...opts.keys()],
    changes,
    quarantine,
  })

  const result = await redis.cfIngest(1, keys.rows(), ...argv)
  const [skipped = 0, late = 0, jobs = 0] = result.splice(-3).reverse()
  return { accepted: result.map((flag) => flag === 1), jobs, late, skipped }
}
