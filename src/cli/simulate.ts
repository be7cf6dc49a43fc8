import { InvalidArgumentError, type Command } from 'commander'
import { Presets, SingleBar } from 'cli-progress'
import { seeded } from '../simulate/random.ts'
import { liveProgress, simulateSequin, type LiveProgress, type SimulatorResult } from '../simulate/sequin.ts'
import { shopStream, type ShopTally } from '../simulate/shop.ts'
import { serviceUrl, webhookToken, WEBHOOK_PATH } from './http.ts'
import { EXIT, type Session } from './session.ts'

interface SimulateOptions {
  url?: string
  rate: number
  duration: number
  changes?: number
  batchSize: number
  concurrency: number
  lostAcks: number
  backoff: number
  seed: number
  timeout?: number
  json?: boolean
}

const number = (min: number, max = Infinity, integer = false) => (text: string): number => {
  const value = Number(text)
  if (text.trim() === '' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new InvalidArgumentError(`expected ${integer ? 'a whole number' : 'a number'} from ${min}${max === Infinity ? '' : ` to ${max}`}`)
  }
  return value
}

/** `simulate`: a shop's change stream delivered with Sequin's rules, so the whole system can be seen working. */
export function registerSimulate (program: Command, session: Session): void {
  program.command('simulate')
    .description('generate a shop\'s changes (users, orders pending → paid → shipped) and deliver them as Sequin does')
    .option('--url <url>', 'the service (http://host:port) or its webhook URL')
    .option('--rate <changes/s>', 'changes committed per second', number(0.1), 20)
    .option('--duration <seconds>', 'commit changes for this long; then deliver until every one is acknowledged', number(0), 10)
    .option('--changes <n>', 'stop committing after this many changes', number(1, Infinity, true))
    .option('--batch-size <n>', 'Sequin\'s batch_size: most messages in one request', number(1, 1000, true), 20)
    .option('--concurrency <n>', 'requests in flight at once', number(1, 80, true), 4)
    .option('--lost-acks <share>', 'share of 2xx answers treated as lost, so that the batch is delivered again', number(0, 1), 0)
    .option('--backoff <ms>', 'first retry delay of a failed message (Sequin: 1000, doubling to 10 min)', number(1), 1000)
    .option('--seed <n>', 'the random seed: the same seed, the same stream', number(0, 2 ** 32, true), 42)
    .option('--timeout <seconds>', 'give up when changes are still unacknowledged after this long (default: duration + 120)', number(1))
    .option('--json', 'print the summary as one JSON object')
    .addHelpText('after', `
Sequin's rules: a batch holds at most one change of a row, and no change of a row is sent while
another of its changes is in flight; a non-2xx answer, a timeout or a lost ack makes each message
of the batch back off (doubling, with jitter) and be re-batched, and a change waiting out its
backoff does not hold its row's later changes back (they may arrive first: late changes). The shipped workflows (jobs/) run
for its changes: order-paid, order-shipped, user-welcome, user-email-changed. Exit code 0 once
every change is acknowledged, 1 otherwise.

Example:
  changeflow simulate --rate 50 --duration 2 --lost-acks 0.1`)
    .action((options: SimulateOptions) => session.run(async () => {
      const url = serviceUrl(session, options.url, WEBHOOK_PATH)
      const random = seeded(options.seed)
      const shop = shopStream({ random, limit: options.changes })
      const live = liveProgress()
      const bar = progressBar(session, options)
      const timer = bar && setInterval(() => bar.update(live.committed, figures(live)), 200)
      let result: SimulatorResult
      try {
        result = await simulateSequin({
          url,
          token: await webhookToken(session),
          changes: shop.changes,
          random,
          live,
          commitsPerSecond: options.rate,
          sendForMs: options.duration * 1000,
          batchSize: options.batchSize,
          concurrency: options.concurrency,
          lostAckRate: options.lostAcks,
          backoff: { baseMs: options.backoff, maxMs: 600_000 },
          immediateRetryMs: 500,
          timeoutMs: (options.timeout ?? options.duration + 120) * 1000,
        })
      } catch (error) {
        // Given up (timed out, say): what got through so far, before the error line.
        session.err(`so far: ${live.committed} committed, ${live.acked} acknowledged, ${live.redeliveries} retried, ${live.requests} requests`)
        throw error
      } finally {
        if (timer) clearInterval(timer)
        bar?.update(live.committed, figures(live))
        bar?.stop()
      }
      report(session, summary(result, shop.tally), options.json ?? false)
      return EXIT.ok
    }))
}

const figures = (live: LiveProgress) => ({ acked: live.acked, retried: live.redeliveries, requests: live.requests })

/** On a terminal only (never in --json output or a pipe): committed against the planned total. */
function progressBar (session: Session, options: SimulateOptions): SingleBar | undefined {
  const stream = session.deps.progress
  if (!stream?.isTTY || options.json) return undefined
  const bar = new SingleBar({
    stream,
    format: 'simulate [{bar}] {value}/{total} committed | {acked} acknowledged | {retried} retried | {requests} requests | {duration}s',
    hideCursor: true,
  }, Presets.shades_classic)
  bar.start(Math.round(options.changes ?? Math.max(1, options.rate * options.duration)), 0, { acked: 0, retried: 0, requests: 0 })
  return bar
}

interface Summary {
  committed: number
  acknowledged: number
  /** Messages delivered again: after a failed request, a timeout or a lost ack. */
  retried: number
  requests: number
  failedRequests: number
  lostAcks: number
  statuses: Record<string, number>
  elapsedMs: number
  changes: ShopTally
}

function summary (result: SimulatorResult, tally: ShopTally): Summary {
  return {
    committed: result.messages.length,
    acknowledged: result.messages.filter((message) => message.acked).length,
    retried: result.redeliveries,
    requests: result.requests,
    failedRequests: result.failedRequests,
    lostAcks: result.lostAcks,
    statuses: result.statuses,
    elapsedMs: result.elapsedMs,
    changes: { ...tally },
  }
}

function report (session: Session, figures: Summary, json: boolean): void {
  if (json) return session.json(figures)
  const { changes } = figures
  const answers = Object.entries(figures.statuses).map(([status, n]) => `${status}×${n}`).join(' ')
  session.out(`committed ${figures.committed} changes in ${(figures.elapsedMs / 1000).toFixed(1)} s: ` +
    `users signed up ${changes.signups}, changed email ${changes.emailChanges}; ` +
    `orders placed ${changes.ordersPlaced}, paid ${changes.ordersPaid}, shipped ${changes.ordersShipped}`)
  session.out(`sent ${figures.requests} requests (answers ${answers || 'none'}): ${figures.acknowledged} changes acknowledged, ` +
    `${figures.retried} retried (${figures.failedRequests} failed requests, ${figures.lostAcks} lost acks)`)
}
