import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import type { Layout } from '../keys.ts'
import type { Metrics } from '../metrics.ts'
import type { ScriptedRedis } from '../redis/scripts.ts'
import { MAX_JSON_DEPTH, parseExactJson, type ParsedJson } from '../json/exact.ts'
import { readEnvelope } from '../sequin/message.ts'
import type { Tracing } from '../tracing/tracing.ts'
import type { Workflow } from '../workflows/define.ts'
import type { Committed } from './commit.ts'
import { journalBounds } from '../journal/journal.ts'
import { asRedelivery, RecentChanges } from './redelivery.ts'
import { commitBatch, ReplicationError } from './shards.ts'
import { planBatch, type BatchPlan, type JobOptions, type Rejection } from './plan.ts'

export interface Counts {
  accepted: number
  duplicates: number
  unmatched: number
  quarantined: number
  jobs: number
}

export type IngestOutcome =
  | { kind: 'accepted', counts: Counts }
  /** Not JSON at all. */
  | { kind: 'bad-json', reason: string }
  | { kind: 'bad-envelope', reason: string }
  /** More messages than MAX_BATCH_MESSAGES: refused before anything is planned. */
  | { kind: 'too-many-messages', count: number, limit: number }
  /** INVALID_MESSAGES=reject, and some messages are invalid: nothing was written. */
  | { kind: 'rejected', errors: Rejection[] }
  /** The quarantine holds QUARANTINE_LIMIT messages: a batch with invalid ones is refused whole. */
  | { kind: 'quarantine-full', held: number, limit: number, errors: Rejection[] }
  | { kind: 'unavailable', reason: string }

export interface Ingest {
  /** `text`: the request body, decoded (gzip) but not parsed: ingest parses it exactly. */
  (text: string, log: Pick<Logger, 'warn' | 'error'>): Promise<IngestOutcome>
}

export interface IngestDeps {
  redis: ScriptedRedis
  layout: Layout
  workflows: readonly Workflow[]
  jobOptions: JobOptions
  config: Pick<Config, 'DEDUP_TTL' | 'ENQUEUE_TIMEOUT' | 'INVALID_MESSAGES' | 'MAX_BATCH_MESSAGES' | 'QUARANTINE_LIMIT' | 'REDIS_WAIT_REPLICAS' | 'REDIS_WAIT_TIMEOUT' | 'JOURNAL_RETENTION' | 'JOURNAL_MAX_LEN'>
  metrics: Metrics
  tracing?: Pick<Tracing, 'changes'>
}

class Deadline extends Error {}

// A cluster failing over or moving slots: a script that met a slot in motion stopped before its
// first new key, and the redelivery completes it.
const CLUSTER_TROUBLE = /TRYAGAIN|non local key|cluster is down|Failed to refresh slots cache|None of startup nodes is available|Too many Cluster redirections/
const CONNECTION_TROUBLE = /Connection is closed|enableOfflineQueue|Stream isn't writeable|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|LOADING|MASTERDOWN|READONLY|NOREPLICAS|CLUSTERDOWN/

/**
 * Redis cannot be reached, not in time, or cannot take writes: Sequin should retry soon.
 * Anything else is a bug.
 */
export function unavailability (error: unknown, redis: Pick<ScriptedRedis, 'status'>): string | null {
  if (error instanceof Deadline) return 'redis too slow'
  if (error instanceof ReplicationError) return `not replicated in time: ${error.message}`
  const message = (error as Error)?.message ?? ''
  // maxmemory reached under noeviction: the script is refused before it writes anything.
  if (message.startsWith('OOM ')) return 'redis out of memory (maxmemory)'
  if (redis.status !== 'ready' || (error as Error)?.name === 'MaxRetriesPerRequestError' || (error as Error)?.name === 'ClusterAllFailedError' ||
    CONNECTION_TROUBLE.test(message) || CLUSTER_TROUBLE.test(message)) {
    return 'redis unavailable'
  }
  return null
}

/** `work` given a signal that aborts at the deadline, when the returned promise rejects too. */
function withDeadline<T> (work: (signal: AbortSignal) => Promise<T>, ms: number): Promise<T> {
  const controller = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      const error = new Deadline(`enqueue took longer than ${ms} ms`)
      controller.abort(error)
      reject(error)
    }, ms)
  })
  return Promise.race([work(controller.signal), deadline]).finally(() => clearTimeout(timer))
}

type Written = Extract<Committed, { ok: true }>

function count (metrics: Metrics, plan: BatchPlan, committed: Written): void {
  plan.changes.forEach((change, i) => {
    const accepted = committed.accepted[i] === true
    metrics.messages.inc({ table: change.table, action: change.action, outcome: accepted ? 'accepted' : 'duplicate' })
    if (accepted) for (const job of change.jobs) metrics.stepsEnqueued.inc({ workflow: job.queue, step: job.name })
  })
  for (const { table, action } of plan.unmatchedChanges) metrics.messages.inc({ table, action, outcome: 'unmatched' })
  // A quarantined message's table and action may be missing or nonsense: not label material.
  if (plan.quarantine.length > 0) metrics.messages.inc({ table: 'unknown', action: 'unknown', outcome: 'quarantined' }, plan.quarantine.length)
  for (const [table, n] of plan.unknownChanges) metrics.emptyChanges.inc({ table }, n)
  if (committed.late > 0) metrics.lateRuns.inc({ outcome: 'run' }, committed.late)
  if (committed.skipped > 0) metrics.lateRuns.inc({ outcome: 'skipped' }, committed.skipped)
}

/** A body's refusals before any Redis work: the webhook and its dry run answer them alike. */
export type Refusal = Extract<IngestOutcome, { kind: 'bad-json' | 'bad-envelope' | 'too-many-messages' }>

type Body = { ok: true, messages: unknown[], depth: number } | { ok: false, outcome: Refusal }

/** Parses a body exactly into its messages, or says why it is refused. */
function readBody (text: string, config: Pick<Config, 'MAX_BATCH_MESSAGES'>): Body {
  let parsed: ParsedJson
  try {
    parsed = parseExactJson(text)
  } catch (error) {
    return { ok: false, outcome: { kind: 'bad-json', reason: `body is not JSON: ${(error as Error).message}` } }
  }
  const envelope = readEnvelope(parsed.value, config.MAX_BATCH_MESSAGES)
  if (!envelope.ok) {
    return { ok: false, outcome: 'tooMany' in envelope ? { kind: 'too-many-messages', ...envelope.tooMany } : { kind: 'bad-envelope', reason: envelope.reason } }
  }
  return { ok: true, messages: envelope.messages, depth: parsed.depth }
}

function planBody (body: Extract<Body, { ok: true }>, workflows: readonly Workflow[], jobOptions: JobOptions, journal: boolean, fingerprints = false): { ok: true, plan: BatchPlan, now: Date } {
  const now = new Date()
  // No message is deeper than the body: most bodies spare planning the per-message depth check.
  return { ok: true, plan: planBatch(body.messages, workflows, jobOptions, now, { checkDepth: body.depth > MAX_JSON_DEPTH, journal, fingerprints }), now }
}

/** Parses a body exactly and plans it (pure): what the webhook would write, or why it refuses it. */
export function prepareBatch (text: string, workflows: readonly Workflow[], jobOptions: JobOptions, config: Pick<Config, 'MAX_BATCH_MESSAGES'>, journal = false):
  { ok: true, plan: BatchPlan, now: Date } | { ok: false, outcome: Refusal } {
  const body = readBody(text, config)
  return body.ok ? planBody(body, workflows, jobOptions, journal) : body
}

export function rejectionsOf (plan: BatchPlan): Rejection[] {
  return plan.quarantine.map(({ index, issues }) => ({ index, issues }))
}

export function createIngest ({ redis, layout, workflows, jobOptions, config, metrics, tracing }: IngestDeps): Ingest {
  const replication = { replicas: config.REDIS_WAIT_REPLICAS, timeoutMs: config.REDIS_WAIT_TIMEOUT }
  const warnedTables = new Set<string>()
  const journal = journalBounds(config)
  const limits = { dedupTtlMs: config.DEDUP_TTL, quarantineLimit: config.QUARANTINE_LIMIT, journal }
  const recent = layout.shards.length === 1 ? new RecentChanges() : undefined

  return async function ingest (text, log) {
    const body = readBody(text, config)
    if (!body.ok) return body.outcome
    const redelivered = recent && await asRedelivery(body.messages, recent, redis, layout.shards[0]!)
    if (redelivered) {
      for (const { table, action } of redelivered.changes) metrics.messages.inc({ table, action, outcome: 'duplicate' })
      const n = redelivered.changes.length
      return { kind: 'accepted', counts: { accepted: 0, duplicates: n, unmatched: 0, quarantined: 0, jobs: 0 } }
    }
    const { plan, now } = planBody(body, workflows, jobOptions, journal !== undefined, recent !== undefined)
    for (const table of plan.unknownChanges.keys()) {
      if (warnedTables.has(table)) continue
      warnedTables.add(table)
      log.warn({ table }, `updates to ${table} arrive with empty "changes", so change.changed() cannot tell which columns changed: run ALTER TABLE ${table} REPLICA IDENTITY FULL`)
    }
    const rejections = () => rejectionsOf(plan)
    if (plan.quarantine.length > 0 && config.INVALID_MESSAGES === 'reject') return { kind: 'rejected', errors: rejections() }
    tracing?.changes(plan)

    let committed: Committed
    try {
      committed = await withDeadline((signal) => commitBatch(redis, layout, plan, limits, now.getTime(), replication, signal), config.ENQUEUE_TIMEOUT)
    } catch (error) {
      // Whether or not the script ran, Sequin's redelivery completes the batch without doubles.
      const reason = unavailability(error, redis)
      if (reason === null) throw error
      if (reason.includes('out of memory')) log.error({ err: error }, 'Redis is full (maxmemory under noeviction): answering 503 so that Sequin redelivers; free memory or raise maxmemory')
      else log.warn({ err: error }, 'enqueue failed; answering 503 so that Sequin redelivers')
      return { kind: 'unavailable', reason }
    }

    if (!committed.ok) {
      log.warn({ held: committed.quarantineFull.held, limit: config.QUARANTINE_LIMIT, invalid: plan.quarantine.length },
        'quarantine full: refusing a batch with invalid messages (Sequin keeps it); drop or redrive quarantined messages')
      return { kind: 'quarantine-full', held: committed.quarantineFull.held, limit: config.QUARANTINE_LIMIT, errors: rejections() }
    }
    count(metrics, plan, committed)
    if (recent) for (const change of plan.changes) if (change.fingerprint) recent.add(change.changeId, change.fingerprint)
    if (committed.dropped > 0) log.warn({ dropped: committed.dropped }, 'runs of workflows an operator gave up (discard-workflow) were not started')
    if (committed.late > 0 || committed.skipped > 0) log.warn({ late: committed.late, skipped: committed.skipped }, 'late changes: older than changes already accepted for their rows')
    for (const entry of plan.quarantine) {
      log.warn({ index: entry.index, reason: entry.name, job: entry.id, issues: entry.issues }, 'message quarantined')
    }
    const accepted = committed.accepted.filter(Boolean).length
    return {
      kind: 'accepted',
      counts: {
        accepted,
        duplicates: committed.accepted.length - accepted,
        unmatched: plan.unmatched,
        quarantined: plan.quarantine.length,
        jobs: committed.jobs,
      },
    }
  }
}
