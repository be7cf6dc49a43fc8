import { appendFileSync, mkdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { projectRoot } from '../../src/config.ts'

/** Where each fault scenario appends its line; `npm run test:faults` prints them as one table. */
export const faultReportFile = join(projectRoot, '.tap', 'faults-report.jsonl')

/** One scenario's outcome. Counts are of changes (Sequin messages) and of their workflow runs. */
export interface ScenarioLine {
  scenario: string
  /** Changes the simulated Sequin sent (each counted once, however often it was redelivered). */
  sent: number
  /** Changes acknowledged with a 2xx. */
  acknowledged: number
  runsCompleted: number
  /** Acknowledged changes whose runs never completed. */
  lost: number
  /** Effects applied more than once (after the provider's idempotency check). */
  duplicatedEffects: number
  orderViolations: number
  /** The scenario's own figure, in words: "p99 ack 41 ms", "lost with everysec: 12". */
  figure: string
}

/** Prints the scenario's line in the test output and records it for the summary table. */
export function reportScenario (t: { comment: (message: string) => void }, line: ScenarioLine): void {
  const { scenario, figure, ...counts } = line
  t.comment(`${scenario}: ${Object.entries(counts).map(([key, value]) => `${key}=${value}`).join(' ')}${figure ? ` | ${figure}` : ''}`)
  mkdirSync(dirname(faultReportFile), { recursive: true })
  appendFileSync(faultReportFile, `${JSON.stringify(line)}\n`)
}

export function readFaultReport (): ScenarioLine[] {
  let text = ''
  try {
    text = readFileSync(faultReportFile, 'utf8')
  } catch {}
  return text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as ScenarioLine)
}

const COLUMNS: Array<[keyof ScenarioLine, string]> = [
  ['scenario', 'scenario'], ['sent', 'sent'], ['acknowledged', 'acked'], ['runsCompleted', 'runs completed'],
  ['lost', 'lost'], ['duplicatedEffects', 'duplicated effects'], ['orderViolations', 'order violations'], ['figure', 'its own figure'],
]

/** The README's reliability table: one Markdown row per scenario, in the order they ran. */
export function faultTable (lines: readonly ScenarioLine[]): string {
  const header = `| ${COLUMNS.map(([, title]) => title).join(' | ')} |`
  const rule = `|${COLUMNS.map(([key]) => (typeof lines[0]?.[key] === 'number' ? '---:' : '---')).join('|')}|`
  const rows = lines.map((line) => `| ${COLUMNS.map(([key]) => String(line[key])).join(' | ')} |`)
  return [header, rule, ...rows].join('\n')
}
