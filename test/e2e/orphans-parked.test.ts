import t from 'tap'
import { loadConfig } from '../../src/config.ts'
import { Keyspace } from '../../src/keys.ts'
import { createWeb, createWorker } from '../../src/runtime/services.ts'
import { loadWorkflows } from '../../src/workflows/load.ts'
import pino from 'pino'
import { executions, hold, release, reset } from '../fixtures/jobs/_recorder.ts'
import { cliOf, REDIS_URL, startService, TOKEN, waitFor } from '../helpers/service.ts'
import { message } from '../helpers/stack.ts'

// In a rolling deploy the old and the new web replicas accept changes of the same row: its queue
// interleaves runs of ledger-apply (old name) and ledger-apply-v2 (new name). After
// `discard-workflow ledger-apply`, an old-name run parked behind a new-name run that is still
// running is passed over when its turn comes: every row moves on.
const old = await startService({ workers: false }) // the old release's web (defines ledger-apply)
t.beforeEach(() => reset())
const keys = new Keyspace(old.config.REDIS_PREFIX)

const config = loadConfig({
  REDIS_PREFIX: old.config.REDIS_PREFIX,
  SEQUIN_WEBHOOK_TOKENS: TOKEN,
  JOBS_DIR: new URL('../fixtures/jobs-renamed-gated', import.meta.url).pathname,
  RECONCILE_INTERVAL: '200ms',
  LOG_LEVEL: 'silent',
})
const logger = pino({ level: 'silent' })
const workflows = await loadWorkflows(config.JOBS_DIR)
const newWeb = await createWeb({ config, logger, redisUrl: REDIS_URL, workflows, tokens: [TOKEN] })
const newWorker = createWorker({ config, logger, redisUrl: REDIS_URL, workflows })
t.teardown(async () => {
  await newWorker.close()
  await newWeb.close()
  await old.close()
})
const postNew = (body: unknown) => newWeb.app.inject({ method: 'POST', url: '/webhooks/sequin', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, payload: JSON.stringify(body) })

let lsn = 8_100_000
const change = (id: number, action: string) => message('ledger', id, action, lsn++)
const cli = cliOf(old)

t.test('discard-workflow of the old name moves every row on, also runs parked behind a new-name run', async (t) => {
  hold('ledger-apply-v2/81')
  const first = change(81, 'insert')
  t.match((await postNew({ data: [first] })).json(), { accepted: 1 }, 'new replica: v2 run, head of row 81')
  await waitFor(() => executions.some((e) => e.workflow === 'ledger-apply-v2' && e.key === '81'), 5_000, 'the v2 head running')
  t.match((await old.post({ data: [change(81, 'update')] })).json(), { accepted: 1 }, 'old replica: a ledger-apply run parks behind it')
  const third = change(81, 'update')
  t.match((await postNew({ data: [third] })).json(), { accepted: 1 }, 'new replica: a later v2 run parks behind both')

  // The deploy is over: the operator gives the old workflow's work up, as the README says.
  const discarded = await cli('discard-workflow', 'ledger-apply')
  t.equal(discarded.code, 0, discarded.stderr)
  t.match(discarded.stdout, /their rows moved on/)
  t.equal((await cli('discard-workflow', 'ledger-audit')).code, 0, 'the old unordered audit too')

  release('ledger-apply-v2/81')
  await waitFor(() => executions.some((e) => e.workflow === 'ledger-apply-v2' && e.step === 'confirm' && e.key === '81'), 5_000, 'the v2 head finished')

  // Every row moves on: the v2 run of the third change runs.
  let ranThird = false
  try {
    await waitFor(() => executions.some((e) => e.workflow === 'ledger-apply-v2' && String(e.lsn) === String(third.metadata.commit_lsn)), 4_000, 'the later v2 run')
    ranThird = true
  } catch {}
  t.ok(ranThird, 'the later v2 run of row 81 ran after discard-workflow')
  const blocked = await old.redis.zrange(keys.blocked('orphaned'), '0', '-1')
  t.same(blocked, [], 'no row counts as blocked by the old queue after the operator discarded it')
  const orphans = await cli('orphans')
  t.equal(orphans.stdout, 'no orphaned work: a worker consumes every queue that holds jobs')
})
