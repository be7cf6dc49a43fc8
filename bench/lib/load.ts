// The load generator, in a process of its own (bench/http.ts starts it): builds `amount` request
// bodies of `batch` unique Sequin messages each, sends them with autocannon over `connections`
// connections, and prints one JSON line.
import autocannon from 'autocannon'
import { newRow, orderPaid } from './workload.ts'

const [url, token, batchText, amountText, connectionsText] = process.argv.slice(2)
const batch = Number(batchText)
const amount = Number(amountText)
// The same changes for every receiver (each writes under a key prefix of its own): rows and
// positions count up from fixed starts, each change an order of its own turning paid.
const bodies = Array.from({ length: amount }, () => JSON.stringify({ data: Array.from({ length: batch }, () => orderPaid('orders', newRow())) }))
let next = 0
const statuses: Record<string, number> = {}

// Wall time from the start to the last answer: autocannon itself only finishes at the next
// whole-second tick of its sampler, which would round every run up to whole seconds.
const started = performance.now()
let lastAnswer = started
const result = await autocannon({
  url: url!,
  method: 'POST',
  connections: Number(connectionsText),
  amount,
  timeout: 30,
  headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
  requests: [{ setupRequest: (request) => ({ ...request, body: bodies[next++ % bodies.length] }) }],
  setupClient: (client) => client.on('response', (status: number) => {
    statuses[status] = (statuses[status] ?? 0) + 1
    lastAnswer = performance.now()
  }),
})
process.stdout.write(`${JSON.stringify({
  seconds: (lastAnswer - started) / 1000,
  requests: result.requests.total,
  p50: result.latency.p50,
  p99: result.latency.p99,
  errors: result.errors + result.timeouts + result.non2xx,
  statuses,
})}\n`)
