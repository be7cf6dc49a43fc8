import { rateOf, runsOf, type Run } from './http.ts'
import { median } from './lib/measure.ts'
import { rate, ratio, table } from './lib/table.ts'
import type { RedisLimit } from './redis-limit.ts'
import type { StepFigures } from './steps.ts'

/** Everything `npm run bench` measured, as written to BENCH_JSON. */
export interface Results {
  node: string
  cpus: number
  cpuModel: string
  loadAverageAtStart: number[]
  loadAverageAtEnd?: number[]
  /** Seconds each part took. */
  partSeconds?: Record<string, number>
  http?: { runs: Run[], profiles: Record<string, unknown> }
  redisLimit?: RedisLimit
  steps?: StepFigures
}

const p99Of = (runs: readonly Run[], receiver: Run['receiver'], batch: number) => {
  const mine = runsOf(runs, receiver, batch)
  return mine.length === 0 ? NaN : median(mine.map((run) => run.p99))
}

export function limitText (limit: RedisLimit, runs: readonly Run[]): string {
  const at100 = rateOf(runs, 'changeflow', 100)
  return table(['what', 'changes/s', 'Redis CPU µs/change', 'changeflow over HTTP at batch 100'], [[
    `ingest script, ${limit.changesPerCall} new changes a call, redis-benchmark -c 4`,
    rate(limit.changesPerSecond),
    limit.cpuUsPerChange.toFixed(0),
    `${rate(at100)} (${Math.round((at100 / limit.changesPerSecond) * 100)}% of the limit)`,
  ]])
}

/** One row per target of the speed work: the measured ratio, the goal, met or not. */
export function summary (results: Results): string {
  const rows: string[][] = []
  const check = (what: string, value: number, goal: number, shown = ratio(value), goalText = `≥ ${ratio(goal)}`) =>
    rows.push([what, Number.isNaN(value) ? 'not measured' : shown, goalText, Number.isNaN(value) ? '-' : value >= goal ? 'met' : 'not met'])
  const runs = results.http?.runs ?? []
  for (const batch of [1, 10, 100, 1000]) {
    const value = rateOf(runs, 'changeflow', batch) / rateOf(runs, 'bare', batch)
    check(`ingest at batch ${batch}, vs bare receiver`, value, 1.1, ratio(value), batch === 100 ? '≥ 1.10× (stretch 1.30×)' : '≥ 1.10×')
  }
  const p99 = p99Of(runs, 'changeflow', 100)
  const bareP99 = p99Of(runs, 'bare', 100)
  check('p99 at batch 100, bare receiver\'s over changeflow\'s', bareP99 / p99, 1, `${Math.round(p99)} vs ${Math.round(bareP99)} ms`, 'no worse')
  check('redeliveries vs new changes, batch 100', rateOf(runs, 'changeflow (redelivered)', 100) / rateOf(runs, 'changeflow', 100), 2)
  const steps = results.steps
  if (steps) {
    check('steps, ordering on, vs BullMQ chained', steps.on / steps.chained, 1)
    check('steps, ordering on, vs BullMQ independent', steps.on / steps.independent, 0.8)
    rows.push(['hot rows: steps/s ordering on / off', `${rate(steps.hotOn)} / ${rate(steps.hotOff)}`, 'reported', '-'])
  }
  return table(['target', 'measured', 'goal', ''], rows)
}
