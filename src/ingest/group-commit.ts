import type { Keyspace } from '../keys.ts'
import { declaredKeys } from '../redis/declared-keys.ts'
import type { ScriptedRedis } from '../redis/scripts.ts'
import { journalArgs, type JournalBounds } from '../journal/journal.ts'
import type { BatchPlan, JobSpec } from './plan.ts'

/** Part of a batch that one request writes as a unit (see commitPlan): one segment of a script call. */
export interface Segment extends Pick<BatchPlan, 'changes' | 'quarantine' | 'positions'> {
  now: number
  ttl: number
  quarantineLimit: number
  /** The change journal's bounds; absent when it is off (JOURNAL_RETENTION=0). */
  journal?: JournalBounds
}

/**
 * Most jobs one script call adds. A script holds Redis for its whole run (about 0.1 ms a job),
 * so a large batch is written as several calls, pipelined on one connection (Redis runs them
 * back to back, in order): none holds the server for more than a few tens of milliseconds.
 */
export const JOBS_PER_SCRIPT = 250

const jobsOf = (segment: Segment) => segment.quarantine.length + segment.changes.reduce((sum, change) => sum + change.jobs.length, 0)

interface Waiting {
  segment: Segment
  resolve (result: number[]): void
  reject (error: unknown): void
}

/**
 * Group commit, per shard: segments submitted while a script call is out are written together,
 * in one call, as soon as it returns, in the order they came (Redis would have run them in that
 * order anyway: one connection). Under load, many small batches then cost Redis one script run
 * and the web process one write, instead of one each; idle, a segment goes out at once. Each
 * segment is still all-or-nothing per change and refused alone when the quarantine is full;
 * a call that fails fails every segment in it, and their requests answer 503 (Sequin redelivers).
 */
export class GroupCommit {
  private waiting: Waiting[] = []
  private calls = 0
  private scheduled = false

  constructor (private readonly redis: ScriptedRedis, private readonly keys: Keyspace) {}

  /**
   * The segment's own result, as the ingest script returns it for a call of one segment. Aborted
   * while it waits (its request answered 503 at the enqueue deadline), it is not written at all:
   * a frozen Redis does not pile up writes that no one waits for.
   */
  submit (segment: Segment, signal?: AbortSignal): Promise<number[]> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason)
      const item: Waiting = { segment, resolve, reject }
      this.waiting.push(item)
      signal?.addEventListener('abort', () => {
        const at = this.waiting.indexOf(item)
        if (at === -1) return // already sent: its call answers
        this.waiting.splice(at, 1)
        reject(signal.reason)
      }, { once: true })
      // Deferred to the check phase: requests whose bodies arrived in the same turn go together.
      if (this.calls === 0 && !this.scheduled) {
        this.scheduled = true
        setImmediate(() => this.flush())
      }
    })
  }

  private flush (): void {
    this.scheduled = false
    const waiting = this.waiting
    this.waiting = []
    let call: Waiting[] = []
    let jobs = 0
    const groups: Waiting[][] = []
    for (const item of waiting) {
      const size = jobsOf(item.segment)
      if (call.length > 0 && jobs + size > JOBS_PER_SCRIPT) {
        groups.push(call)
        call = []
        jobs = 0
      }
      call.push(item)
      jobs += size
    }
    if (call.length > 0) groups.push(call)
    for (const group of groups) {
      this.calls++
      this.write(group).finally(() => {
        this.calls--
        if (this.calls === 0 && this.waiting.length > 0) this.flush()
      })
    }
  }

  private async write (group: Waiting[]): Promise<void> {
    try {
      const results = await this.call(group.map((item) => item.segment))
      group.forEach((item, i) => item.resolve(results[i]!))
    } catch (error) {
      for (const item of group) item.reject(error)
    }
  }

  private async call (segments: Segment[]): Promise<number[][]> {
    const { redis, keys } = this
    const { argv, queues } = scriptArguments(keys, segments)
    const declared = declaredKeys(redis, keys.rows(), function * () {
      yield keys.tripwire()
      yield keys.discardedQueues()
      for (const name of queues) yield * keys.queueKeysTouched(name)
      for (const segment of segments) {
        if (segment.journal) yield keys.journal()
        for (const change of segment.changes) {
          yield keys.seen(change.changeId)
          if (segment.journal && change.journal) yield keys.journalRow(change.journal.row)
          for (const job of change.jobs) {
            yield keys.job(job.queue, job.id)
            if (job.run) yield keys.run(job.run)
            if (job.row) yield keys.rowQueue(job.row)
            if (job.pkRow) yield keys.rowVersion(job.pkRow)
          }
        }
        for (const job of segment.quarantine) yield keys.job(job.queue, job.id)
        for (const position of segment.positions) yield keys.rowVersion(position.row)
      }
    })
    const flat = await redis.cfIngest(declared.length, ...declared, ...argv)
    const results: number[][] = []
    for (let at = 0; at < flat.length; at += flat[at]! + 1) results.push(flat.slice(at + 1, at + 1 + flat[at]!))
    if (results.length !== segments.length) throw new Error(`the ingest script answered for ${results.length} of ${segments.length} segments`)
    return results
  }
}

/** The ingest script's ARGV for these segments (the call JSON, then each job's data), and the queues it adds to. */
export function scriptArguments (keys: Keyspace, segments: readonly Segment[]): { argv: string[], queues: Set<string> } {
  const argv: string[] = ['']
  const queues = new Set<string>()
  const opts = new Map<string, number>()
  const scriptJob = (job: JobSpec) => {
    queues.add(job.queue)
    let index = opts.get(job.opts)
    if (index === undefined) {
      index = opts.size + 1
      opts.set(job.opts, index)
    }
    argv.push(job.data)
    const { queue, id, name, run, row, pkRow, ordered, skipLate } = job
    return { queue, id, name, data: argv.length, opts: index, run, row, pkRow, ordered, skipLate }
  }
  const written = segments.map((segment) => ({
    now: String(segment.now),
    // Text: Redis would format a Lua number for every PEXPIRE and SET PX.
    ttl: String(segment.ttl),
    quarantineLimit: segment.quarantineLimit,
    journal: segment.journal && journalArgs(segment.journal, segment.now),
    changes: segment.changes.map((change) => ({
      id: change.changeId,
      version: change.version,
      late: change.late === undefined ? undefined : Number(change.late),
      jobs: change.jobs.map(scriptJob),
      journal: segment.journal && change.journal,
      again: change.again ? 1 : undefined,
      forced: change.forced ? 1 : undefined,
    })),
    quarantine: segment.quarantine.map(scriptJob),
    positions: segment.positions,
  }))
  argv[0] = JSON.stringify({ bull: keys.bullPrefix, own: keys.own, queues: [...queues], opts: [...opts.keys()], segments: written })
  return { argv, queues }
}

const committers = new WeakMap<ScriptedRedis, Map<string, GroupCommit>>()

/** The shard's group committer on this connection. */
export function groupCommitFor (redis: ScriptedRedis, keys: Keyspace): GroupCommit {
  let byShard = committers.get(redis)
  if (!byShard) committers.set(redis, byShard = new Map())
  let committer = byShard.get(keys.own)
  if (!committer) byShard.set(keys.own, committer = new GroupCommit(redis, keys))
  return committer
}
