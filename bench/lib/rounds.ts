import { median, type Sample } from './measure.ts'

export interface Scenario {
  name: string
  /** Builds a workload (`warmUp`: a small one), runs it, checks the outcome; returns what was measured. */
  measure (warmUp: boolean): Promise<Sample>
}

export interface Timings {
  scenario: Scenario
  seconds: number[]
  median: number
  best: number
  worst: number
  /** Medians of the CPU seconds each side spent per measurement. */
  nodeCpu: number
  redisCpu: number
}

/**
 * A warm-up of every scenario (JIT, script loading, connections), then `repeats` rounds that
 * take the scenarios in turn, so that a drift of the machine (another process, Redis growing)
 * spreads over all of them instead of favouring whichever ran first. `clear` runs after each.
 */
export async function runRounds (part: string, scenarios: readonly Scenario[], repeats: number, clear: () => Promise<void>): Promise<Timings[]> {
  const samples = new Map<Scenario, Sample[]>(scenarios.map((scenario) => [scenario, []]))
  for (const scenario of scenarios) {
    await scenario.measure(true)
    await clear()
  }
  for (let round = 1; round <= repeats; round++) {
    for (const scenario of scenarios) {
      const sample = await scenario.measure(false)
      await clear()
      samples.get(scenario)!.push(sample)
      process.stderr.write(`  ${part} ${round}/${repeats} ${scenario.name}: ${sample.seconds.toFixed(3)} s` +
        ` (CPU: node ${sample.nodeCpu.toFixed(2)} s, redis ${sample.redisCpu.toFixed(2)} s)\n`)
    }
  }
  return scenarios.map((scenario) => {
    const all = samples.get(scenario)!
    const seconds = all.map((sample) => sample.seconds)
    return {
      scenario,
      seconds,
      median: median(seconds),
      best: Math.min(...seconds),
      worst: Math.max(...seconds),
      nodeCpu: median(all.map((sample) => sample.nodeCpu)),
      redisCpu: median(all.map((sample) => sample.redisCpu)),
    }
  })
}
