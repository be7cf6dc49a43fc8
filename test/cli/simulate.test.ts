import t from 'tap'
import { projectRoot } from '../../src/config.ts'
import { changeflow, envOf, listen } from '../helpers/changeflow.ts'
import { cliOf, startService, waitFor } from '../helpers/service.ts'

// The shipped workflows (jobs/), which the simulated shop's changes are made for.
const service = await startService({ env: { JOBS_DIR: `${projectRoot}jobs` } })
t.teardown(() => service.close())
const { url, port } = await listen(service)
const cli = cliOf(service)

const completed = async (queue: string) => (await service.queue(queue).getJobCounts('completed')).completed ?? 0

t.test('every change is acknowledged despite lost acks, and each workflow runs once per change', async (t) => {
  const result = await cli('simulate', '--url', url, '--changes', '80', '--rate', '400', '--batch-size', '2', '--lost-acks', '0.25', '--backoff', '20', '--seed', '7', '--json')
  t.equal(result.code, 0, result.stderr)
  const summary = JSON.parse(result.stdout)
  t.match(summary, { committed: 80, acknowledged: 80 })
  t.ok(summary.lostAcks > 0, 'some acks were lost')
  t.ok(summary.retried >= summary.lostAcks, 'their batches were delivered again')
  const { signups, emailChanges, ordersPlaced, ordersPaid, ordersShipped } = summary.changes
  t.equal(signups + emailChanges + ordersPlaced + ordersPaid + ordersShipped, 80)
  t.ok(ordersPaid > 0 && ordersShipped > 0 && emailChanges > 0, 'orders move through their statuses, users change email')

  // Redelivered batches are duplicates: each workflow's steps completed exactly once per change.
  const expected = { 'order-paid': 3 * ordersPaid, 'order-shipped': ordersShipped, 'user-welcome': signups, 'user-email-changed': emailChanges }
  await waitFor(async () => {
    for (const [queue, n] of Object.entries(expected)) if (await completed(queue) < n) return false
    return true
  }, 15_000, 'every run to complete')
  for (const [queue, n] of Object.entries(expected)) t.equal(await completed(queue), n, `${queue}: ${n} steps completed`)
})

t.test('the README example, a summary in two lines', async (t) => {
  const result = await changeflow(['simulate', '--rate', '50', '--duration', '2', '--lost-acks', '0.1'], envOf(service, port))
  t.equal(result.code, 0, result.stderr)
  const [committed, sent] = result.stdout.trimEnd().split('\n')
  t.match(committed, /^committed (\d+) changes in \d+\.\d s: users signed up \d+, changed email \d+; orders placed \d+, paid \d+, shipped \d+$/)
  const n = Number(/^committed (\d+)/.exec(committed!)![1])
  t.ok(n >= 80 && n <= 101, `about 50/s for 2 s: ${n}`)
  t.match(sent, new RegExp(`^sent \\d+ requests \\(answers 200×\\d+\\): ${n} changes acknowledged, \\d+ retried \\(\\d+ failed requests, \\d+ lost acks\\)$`))
})

t.test('bad options are usage errors; an unreachable service leaves changes unacknowledged (exit 1)', async (t) => {
  const bad = await cli('simulate', '--lost-acks', '2')
  t.same([bad.code, bad.err[0]], [2, "error: option '--lost-acks <share>' argument '2' is invalid. expected a number from 0 to 1"])
  const down = await cli('simulate', '--url', 'http://127.0.0.1:9', '--changes', '3', '--backoff', '10', '--timeout', '1')
  t.equal(down.code, 1)
  t.match(down.stderr, /^so far: 3 committed, 0 acknowledged, \d+ retried, \d+ requests\nerror: simulator timed out with 3 messages unacknowledged/)
})
