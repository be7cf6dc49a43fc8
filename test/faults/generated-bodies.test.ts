import { gzipSync } from 'node:zlib'
import fc from 'fast-check'
import t from 'tap'
import { createJobOptions } from '../../src/ingest/job-options.ts'
import { changeId } from '../../src/ingest/identity.ts'
import { planBatch, type BatchPlan } from '../../src/ingest/plan.ts'
import { parseExactJson } from '../../src/json/exact.ts'
import { Keyspace } from '../../src/keys.ts'
import { readEnvelope, type SequinMetadata } from '../../src/sequin/message.ts'
import { comparePositions } from '../../src/sequin/position.ts'
import { loadWorkflows } from '../../src/workflows/load.ts'
import { bodies, type GeneratedBody } from '../helpers/body-arbitraries.ts'
import { reportScenario } from '../helpers/fault-report.ts'
import { startService, TOKEN } from '../helpers/service.ts'
import { logSink, suiteLog } from '../helpers/suite-logs.ts'
import { suiteSecret } from '../helpers/suite-secrets.ts'

// 10,000 generated bodies posted to the webhook (app.inject), each checked against Redis: never a
// 5xx, never a crash, and never a 2xx for something not stored. FAULT_FUZZ_SEED repeats a run;
// FAULT_FUZZ_RUNS changes its size.
// About 60 s on 2 shared cores; the headroom is for a busier machine.
t.setTimeout(180_000)
const SEED = process.env.FAULT_FUZZ_SEED ? Number(process.env.FAULT_FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31)
const RUNS = Number(process.env.FAULT_FUZZ_RUNS ?? 10_000)
suiteSecret('the in-process test webhook token', TOKEN)
// Generated before the service starts: generating blocks the event loop for seconds, which the
// service's load shedding would rightly answer with 503s.
const generatedAt = Date.now()
const samples = fc.sample(bodies, { seed: SEED, numRuns: RUNS })
const generationMs = Date.now() - generatedAt

const service = await startService({ workers: false, env: { QUARANTINE_LIMIT: '1000000' }, logs: logSink(suiteLog('web-in-process')) })
t.teardown(() => service.close())
const redis = service.redis
const keys = new Keyspace(service.config.REDIS_PREFIX)
const workflows = await loadWorkflows(service.config.JOBS_DIR)
const jobOptions = createJobOptions(workflows, service.config)

/** What the body should become, worked out here from the same pure planning the service uses. */
interface Expectation {
  messages: number
  plan?: BatchPlan
  /** Change ids of every message that has an identity, valid or not: none may appear after a 4xx. */
  candidates: string[]
}

function expectationOf (sent: string): Expectation {
  // As the service receives it: sent as UTF-8, where a lone surrogate becomes U+FFFD.
  const text = Buffer.from(sent, 'utf8').toString('utf8')
  let value: unknown
  try {
    value = parseExactJson(text).value
  } catch {
    return { messages: 0, candidates: [] }
  }
  const envelope = readEnvelope(value, service.config.MAX_BATCH_MESSAGES)
  if (!envelope.ok) return { messages: 0, candidates: [] }
  const candidates = new Set<string>()
  for (const message of envelope.messages) {
    try {
      const metadata = (message as { metadata?: unknown } | null)?.metadata
      if (metadata !== null && typeof metadata === 'object') candidates.add(changeId(metadata as SequinMetadata))
    } catch {}
  }
  return { messages: envelope.messages.length, plan: planBatch(envelope.messages, workflows, jobOptions, new Date()), candidates: [...candidates] }
}

async function existing (redisKeys: string[]): Promise<boolean[]> {
  if (redisKeys.length === 0) return []
  const pipeline = redis.pipeline()
  for (const key of redisKeys) pipeline.exists(key)
  return ((await pipeline.exec()) ?? []).map(([, n]) => n === 1)
}

/** Is each first job of a newly accepted change in Redis: in its queue, parked behind its row, or skipped as late? */
async function missingJobs (plan: BatchPlan, fresh: Set<string>): Promise<string[]> {
  const missing: string[] = []
  // A change is its identity: a second message with the same one (even of another table) is a
  // duplicate within the batch, and only the first, in commit order, enters its runs.
  const entered = plan.changes.filter((c, i) => fresh.has(c.changeId) && plan.changes.findIndex((d) => d.changeId === c.changeId) === i)
  for (const change of entered) {
    for (const job of change.jobs) {
      if (await redis.exists(keys.job(job.queue, job.id))) continue
      if (await redis.hexists(keys.run(job.run!), 'pj')) continue
      if (job.skipLate && job.pkRow && change.version) {
        const newest = (await redis.get(keys.rowVersion(job.pkRow)))?.split(':')
        if (newest && comparePositions(change.version, [newest[0]!, newest[1]!]) < 0) continue
      }
      missing.push(`${job.queue}/${job.id}`)
    }
  }
  return missing
}

type Counts = { accepted: number, duplicates: number, unmatched: number, quarantined: number, jobs: number }

/** Posts one body and says what is wrong with the answer or with Redis after it, if anything. */
async function check (body: GeneratedBody, tally: { changes: number, acknowledged: number, lost: number }): Promise<{ status: number, problems: string[] }> {
  const expected = expectationOf(body.text)
  const seenKeys = expected.candidates.map((id) => keys.seen(id))
  const quarantineKeys = (expected.plan?.quarantine ?? []).map((q) => keys.job(q.queue, q.id))
  const [seenBefore, quarantinedBefore] = [await existing(seenKeys), await existing(quarantineKeys)]
  const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...(body.gzip ? { 'content-encoding': 'gzip' } : {}), ...body.headers }
  const response = await service.web.app.inject({ method: 'POST', url: '/webhooks/sequin', headers, payload: body.gzip ? gzipSync(body.text) : body.text })
  const [seenAfter, quarantinedAfter] = [await existing(seenKeys), await existing(quarantineKeys)]
  const newlySeen = expected.candidates.filter((_id, i) => !seenBefore[i] && seenAfter[i])
  const problems: string[] = []
  const status = response.statusCode
  tally.changes += expected.plan?.changes.length ?? 0
  if (status >= 500) problems.push(`answered ${status}: ${response.body.slice(0, 200)}`)
  else if (status >= 200 && status < 300) {
    const counts = response.json() as Counts
    const plan = expected.plan
    if (!plan) return { status, problems: [`answered ${status} to a body that is not a Sequin body`] }
    tally.acknowledged += plan.changes.length
    const { accepted, duplicates, unmatched, quarantined } = counts
    if (accepted + duplicates + unmatched + quarantined !== expected.messages) problems.push(`counts ${JSON.stringify(counts)} do not add up to ${expected.messages} messages`)
    if (accepted + duplicates !== plan.changes.length) problems.push(`accepted + duplicates = ${accepted + duplicates}, but ${plan.changes.length} valid changes start workflows`)
    if (unmatched !== plan.unmatched) problems.push(`unmatched ${unmatched}, expected ${plan.unmatched}`)
    if (quarantined !== plan.quarantine.length) problems.push(`quarantined ${quarantined}, expected ${plan.quarantine.length}`)
    if (newlySeen.length !== accepted) problems.push(`accepted ${accepted}, but ${newlySeen.length} changes were newly recorded as seen`)
    const unknown = plan.changes.filter((c) => !seenAfter[expected.candidates.indexOf(c.changeId)])
    if (unknown.length > 0) problems.push(`${unknown.length} changes counted as accepted or duplicate have no dedup record`)
    const missing = await missingJobs(plan, new Set(newlySeen))
    if (missing.length > 0) problems.push(`accepted changes without their first jobs: ${missing.join(', ')}`)
    const absent = plan.quarantine.filter((_q, i) => !quarantinedAfter[i])
    if (absent.length > 0) problems.push(`${absent.length} quarantined messages have no quarantine job`)
    tally.lost += unknown.length + missing.length + absent.length
  } else if (![400, 413, 415, 422].includes(status)) {
    problems.push(`answered ${status}`)
  } else {
    if (newlySeen.length > 0) problems.push(`answered ${status}, yet ${newlySeen.length} changes were recorded`)
    if (quarantinedAfter.some((after, i) => after && !quarantinedBefore[i])) problems.push(`answered ${status}, yet messages were quarantined`)
  }
  return { status, problems }
}

t.test(`${RUNS} generated bodies: never a 5xx, never a crash, never a 2xx for something not stored`, async (t) => {
  t.comment(`fast-check seed ${SEED} (FAULT_FUZZ_SEED=${SEED} repeats this run); generated in ${generationMs} ms`)
  const started = Date.now()
  const byKind = new Map<string, Map<number, number>>()
  const failures: string[] = []
  const tally = { changes: 0, acknowledged: 0, lost: 0 }
  let fivexx = 0
  let disagreements = 0
  for (const [index, body] of samples.entries()) {
    const { status, problems } = await check(body, tally)
    if (status >= 500) fivexx++
    const statuses = byKind.get(body.kind) ?? new Map<number, number>()
    statuses.set(status, (statuses.get(status) ?? 0) + 1)
    byKind.set(body.kind, statuses)
    if (problems.length > 0) disagreements++
    if (problems.length > 0 && failures.length < 20) {
      failures.push(`#${index} (${body.kind}, ${body.text.length} chars: ${body.text.slice(0, 160)}): ${problems.join('; ')}`)
    }
  }
  const ready = await service.web.app.inject({ method: 'GET', url: '/readyz' })
  const elapsed = Date.now() - started
  for (const [kind, statuses] of byKind) t.comment(`${kind}: ${[...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(' ')}`)
  const all = new Map<number, number>()
  for (const statuses of byKind.values()) for (const [s, n] of statuses) all.set(s, (all.get(s) ?? 0) + n)

  reportScenario(t, {
    scenario: `${RUNS} generated bodies (fast-check, seed ${SEED})`,
    sent: tally.changes,
    acknowledged: tally.acknowledged,
    runsCompleted: 0,
    lost: tally.lost,
    duplicatedEffects: 0,
    orderViolations: 0,
    figure: `answers ${[...all].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(' ')}; ${fivexx} 5xx, ` +
      `${disagreements} bodies whose answer disagrees with Redis; in ${(elapsed / 1000).toFixed(1)} s ` +
      '(changes: valid messages that start workflows; no workers: checked stored, not run)',
  })
  t.same(failures, [], 'every answer agrees with what Redis holds, and none is a 5xx')
  t.equal(ready.statusCode, 200, 'the service is still ready')
  t.ok((all.get(200) ?? 0) > RUNS / 4 && (all.get(400) ?? 0) > RUNS / 20, 'both accepted and refused bodies were exercised')
})
