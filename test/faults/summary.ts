// Prints the fault suite's summary table (run by `npm run test:faults` after the scenarios).
import { faultTable, readFaultReport } from '../helpers/fault-report.ts'

const lines = readFaultReport()
if (lines.length === 0) {
  console.error('fault suite: no scenario reported a line')
  process.exitCode = 1
} else {
  console.log(`\nfault suite: ${lines.length} scenarios\n\n${faultTable(lines)}\n`)
}
