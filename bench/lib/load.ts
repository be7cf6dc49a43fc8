// The load generator, in a process of its own (bench/http.ts starts it): builds request bodies of
// `batch` unique Sequin messages each and sends them with autocannon over `connections`
// connections: first `warmUp` requests (JIT, scripts, connections), then, once the parent says
// `go` on stdin (it samples CPU between the two), the `amount` measured ones, with changes of
// their own. Prints `warm` after the warm-up and one JSON line at the end, with the CPU the
// measured load cost this process.
import autocannon from 'autocannon'
import { once } from 'node:events'
import { newRow, orderPaid } from './workload.ts'

const [url, token, batchText, amountText, connectionsText, warmUpText = '0'] = process.argv.slice(2)
const batch = Number(batchText)
const amount = Number(amountText)
const warmUp = Number(warmUpText)
// The same changes for every receiver (each writes under a key prefix of its own): rows and
// positions count up from fixed starts, each change an order of its own turning paid.
const requestBodies = (count: number) => Array.from({ length: count }, () => JSON.stringify({ data: Array.from({ length: batch }, () => orderPaid('orders', newRow())) }))
let statuses: Record<string, number> = {}
let lastAnswer = 0

function send (bodies: string[]) {
  let next = 0
  return autocannon({
    url: url!,
    method: 'POST',
    connections: Number(connectionsText),
    amount: bodies.length,
    timeout: 30,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    requests: [{ setupRequest: (request) => ({ ...request, body: bodies[next++ % bodies.length] }) }],
    setupClient: (client) => client.on('response', (status: number) => {
      statuses[status] = (statuses[status] ?? 0) + 1
      lastAnswer = performance.now()
    }),
  })
}

if (warmUp > 0) {
  await send(requestBodies(warmUp))
  statuses = {}
  process.stdout.write('warm\n')
  await once(process.stdin, 'data')
}
const bodies = requestBodies(amount)

// Wall time from the start to the last answer: autocannon itself only finishes at the next
// whole-second tick of its sampler, which would round every run up to whole seconds.
const started = performance.now()
lastAnswer = started
const cpuBefore = process.cpuUsage()
const result = await send(bodies)
const cpu = process.cpuUsage(cpuBefore)
process.stdout.write(`${JSON.stringify({
  seconds: (lastAnswer - started) / 1000,
  requests: result.requests.total,
  p50: result.latency.p50,
  p99: result.latency.p99,
  errors: result.errors + result.timeouts + result.non2xx,
  statuses,
  // This process's own CPU during the measured load (µs): the receivers' neighbour on the cores.
  cpuUs: cpu.user + cpu.system,
})}\n`)
process.stdin.destroy()
