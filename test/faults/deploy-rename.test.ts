import { join } from 'node:path'
import t from 'tap'
import { loadConfig, projectRoot } from '../../src/config.ts'
import { Keyspace } from '../../src/keys.ts'
import { runCli } from '../../src/cli/program.ts'
import { reportScenario } from '../helpers/fault-report.ts'
import { spawnWorker, stopWorker } from '../helpers/proof.ts'
import { simulateSequin, type SimulatedMessage } from '../../src/simulate/sequin.ts'
import { REDIS_URL, waitFor } from '../helpers/service.ts'
import { suiteSecret } from '../helpers/suite-secrets.ts'
import { ownPrefix, startWebProcess } from '../helpers/web-processes.ts'

// A rolling deploy that renames a workflow (account-sync → account-sync-v2): old and new web and
// worker replicas run at once under traffic, then the old ones stop. Runs the old replicas
// accepted are left in a queue no worker consumes; the operator's one command moves every row on.
const TOKEN = suiteSecret('deploy-rename webhook token', 'cf-fault-webhook-token-Rename-4Hs8Qe')
const oldJobs = join(projectRoot, 'test/fixtures/rename-jobs/old')
const newJobs = join(projectRoot, 'test/fixtures/rename-jobs/new')

interface Effect { lsn: number, workflow: string, step: string, late: boolean }

t.test('a workflow renamed during traffic, old and new replicas at once: every row moves on', async (t) => {
  const { prefix, redis } = ownPrefix(t, REDIS_URL)
  const keys = new Keyspace(prefix)
  const common = { REDIS_URL, REDIS_PREFIX: prefix, SEQUIN_WEBHOOK_TOKENS: TOKEN, RECONCILE_INTERVAL: '500ms' }
  const oldWeb = await startWebProcess(t, 'rename-old-web', { ...common, JOBS_DIR: oldJobs })
  const newWeb = await startWebProcess(t, 'rename-new-web', { ...common, JOBS_DIR: newJobs })
  const oldWorker = spawnWorker({ ...common, JOBS_DIR: oldJobs }, 'rename-old-worker')
  const newWorker = spawnWorker({ ...common, JOBS_DIR: newJobs }, 'rename-new-worker')
  t.teardown(() => Promise.all([stopWorker(oldWorker, 'SIGKILL'), stopWorker(newWorker, 'SIGKILL')]))

  const rows = 30
  const firstRow = 40_000
  const messages: SimulatedMessage[] = []
  const simulation = simulateSequin({
    url: [oldWeb.url, newWeb.url], token: TOKEN, table: 'accounts', rows, changesPerRow: 6, firstRow, batchSize: 6, concurrency: 4, immediateRetryMs: 20, timeoutMs: 90_000,
  }).then((result) => { messages.push(...result.messages); return result })
  // Mid-traffic the deploy completes: the old worker, then the old web, stop.
  await waitFor(async () => (await redis.llen(`{${prefix}}:rename:effects:${firstRow}`)) > 0 || messages.length > 0, 30_000, 'traffic')
  await new Promise((resolve) => setTimeout(resolve, 400))
  await stopWorker(oldWorker, 'SIGTERM')
  await oldWeb.web.stop('SIGTERM')
  const sim = await simulation

  // What the old release accepted and did not run now waits where no worker looks: blocked rows.
  const orphanedRows = async () => redis.zcard(keys.blocked('orphaned'))
  await waitFor(async () => await orphanedRows() > 0, 15_000, 'rows counted as blocked by the orphaned queue')
  const blockedBefore = await orphanedRows()
  const out: string[] = []
  const err: string[] = []
  const cli = (...argv: string[]) => runCli(argv, { config: loadConfig({ REDIS_PREFIX: prefix, DEDUP_TTL: '60s', KEEP_COMPLETED_AGE: '60s' }), redis, out: (line) => out.push(line), err: (line) => err.push(line) })
  t.equal(await cli('discard-workflow', 'account-sync'), 0, err.join('\n'))
  const fromQueue = Number(/^discarded (\d+) runs of account-sync/.exec(out.at(-1) ?? '')?.[1] ?? NaN)

  // Every row moves on: nothing is left in a row queue, nothing counts as blocked.
  await waitFor(async () => (await redis.keys(`${keys.own}:rowq:*`)).length === 0, 30_000, 'every row queue to empty')
  await waitFor(async () => await orphanedRows() === 0, 10_000, 'no row blocked')
  await new Promise((resolve) => setTimeout(resolve, 300)) // a doubled effect would show up here
  // Runs given up: those the command took from the old queue, and those passed over in rows.
  let discarded = 0
  for (const key of await redis.keys(`${keys.own}:run:*`)) if (await redis.hexists(key, 'discarded')) discarded++

  let completed = 0
  let duplicatedEffects = 0
  let orderViolations = 0
  const byRow = new Map<number, SimulatedMessage[]>()
  for (const message of sim.messages) byRow.set(message.row, [...(byRow.get(message.row) ?? []), message])
  for (const [row] of byRow) {
    const effects: Effect[] = (await redis.lrange(`{${prefix}}:rename:effects:${row}`, 0, -1)).map((entry) => {
      const [lsn, workflow, step, late] = entry.split(':')
      return { lsn: Number(lsn), workflow: workflow!, step: step!, late: late === 'late' }
    })
    const seen = new Set<string>()
    for (const effect of effects) {
      const id = `${effect.lsn}:${effect.step}`
      if (seen.has(id)) duplicatedEffects++
      seen.add(id)
    }
    completed += effects.filter((effect) => effect.step === 'credit').length
    let last: Effect | undefined
    for (const effect of effects.filter((e) => !e.late)) {
      if (last && (effect.lsn < last.lsn || (effect.lsn === last.lsn && effect.step === 'debit' && last.step === 'credit'))) orderViolations++
      last = effect
    }
  }
  const acked = sim.messages.filter((message) => message.acked).length
  const lost = acked - completed - discarded
  reportScenario(t, {
    scenario: 'a workflow renamed during traffic (old and new replicas at once), then its orphaned runs discarded',
    sent: sim.messages.length,
    acknowledged: acked,
    runsCompleted: completed,
    lost,
    duplicatedEffects,
    orderViolations,
    figure: `${blockedBefore} rows blocked by the old queue; one command (npx changeflow discard-workflow) gave up ${discarded} runs ` +
      `(${fromQueue} from the old queue, the rest parked in rows)`,
  })
  t.equal(acked, rows * 6, 'every change was acknowledged')
  t.ok(blockedBefore > 0, 'the old queue held rows up until the operator acted')
  t.ok(discarded > 0, 'runs of the old name were discarded')
  t.equal(lost, 0, 'each change completed, or its old-name run was discarded')
  t.equal(duplicatedEffects, 0)
  t.equal(orderViolations, 0, 'rows kept their order across the rename')
})
