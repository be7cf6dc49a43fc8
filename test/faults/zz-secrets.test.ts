import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import t from 'tap'
import { projectRoot } from '../../src/config.ts'
import { faultLogDir } from '../helpers/fault-logs.ts'
import { faultReportFile, reportScenario } from '../helpers/fault-report.ts'
import { readSecrets, secretsFile, type SuiteSecret } from '../helpers/suite-secrets.ts'

// Runs last in `npm run test:faults` (the name sorts last): no secret the suite handed its
// services (webhook tokens, dashboard passwords, metrics tokens) may appear in any log line any
// of them wrote, nor in the suite's test output.
const testResults = join(projectRoot, '.tap', 'test-results', 'test', 'faults')
const self = basename(process.argv[1] ?? '')

function filesUnder (dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((name) => join(dir, name)).filter((path) => statSync(path).isFile())
  } catch {
    return []
  }
}

interface Finding { secret: string, file: string, lines: number[] }

/** Which secrets appear in which files, and on which lines (never the values: they would be printed). */
function scan (files: string[], secrets: SuiteSecret[]): { findings: Finding[], bytes: number, lines: number, unredacted: string[] } {
  const findings: Finding[] = []
  const unredacted: string[] = []
  let bytes = 0
  let lines = 0
  for (const file of files) {
    const text = readFileSync(file, 'utf8')
    bytes += text.length
    const fileLines = text.split('\n')
    lines += fileLines.length
    for (const secret of secrets) {
      if (!text.includes(secret.value)) continue
      const at = fileLines.flatMap((line, i) => (line.includes(secret.value) ? [i + 1] : []))
      findings.push({ secret: `${secret.name} (registered by ${secret.file})`, file, lines: at.slice(0, 5) })
    }
    fileLines.forEach((line, i) => {
      if (!line.startsWith('{') || !/authorization/i.test(line)) return
      try {
        if (authorizationValues(JSON.parse(line)).some((value) => value !== '[redacted]')) unredacted.push(`${file}:${i + 1}`)
      } catch {}
    })
  }
  return { findings, bytes, lines, unredacted }
}

/** Every value under a key named `authorization` (any case), at any depth of a log line. */
function authorizationValues (root: unknown): unknown[] {
  const found: unknown[] = []
  const stack = [root]
  while (stack.length > 0) {
    const value = stack.pop()
    if (!value || typeof value !== 'object') continue
    for (const [key, inner] of Object.entries(value)) {
      if (key.toLowerCase() === 'authorization') found.push(inner)
      else stack.push(inner)
    }
  }
  return found
}

t.test('no secret of the suite in any log line or in the test output', async (t) => {
  const secrets = readSecrets()
  const logs = filesUnder(faultLogDir)
  const outputs = [...filesUnder(testResults).filter((path) => !basename(path).startsWith(self)), faultReportFile].filter((path) => {
    try {
      return statSync(path).isFile()
    } catch {
      return false
    }
  })
  t.ok(secrets.length > 0, `the suite registered its secrets (${secrets.length}) in ${secretsFile}`)
  t.ok(logs.length > 0, `the suite's services logged into ${faultLogDir} (${logs.length} files)`)

  // The scan can fail: a planted secret is found.
  const planted = mkdtempSync(join(tmpdir(), 'changeflow-secrets-'))
  t.teardown(() => rmSync(planted, { recursive: true, force: true }))
  const canary = secrets[0]
  if (canary) {
    writeFileSync(join(planted, 'planted.log'), `{"msg":"x","authorization":"Bearer ${canary.value}"}\n`)
    const control = scan(filesUnder(planted), secrets)
    t.equal(control.findings.length, 1, 'negative control: a planted secret is found')
    t.equal(control.unredacted.length, 1, 'negative control: an unredacted authorization field is found')
  }

  const logScan = scan(logs, secrets)
  const outputScan = scan(outputs, secrets)
  const found = [...logScan.findings, ...outputScan.findings]
  reportScenario(t, {
    scenario: 'no secret in any log line of the suite',
    sent: 0,
    acknowledged: 0,
    runsCompleted: 0,
    lost: 0,
    duplicatedEffects: 0,
    orderViolations: 0,
    figure: `${secrets.length} secrets searched in ${logs.length} log files (${Math.round(logScan.bytes / 1024)} KiB, ${logScan.lines} lines) ` +
      `and ${outputs.length} test outputs: ${found.length} found, ${logScan.unredacted.length + outputScan.unredacted.length} authorization fields unredacted`,
  })
  t.same(found.map((f) => `${f.secret} in ${f.file} (lines ${f.lines.join(', ')})`), [], 'no log file or test output holds a secret')
  t.same([...logScan.unredacted, ...outputScan.unredacted], [], 'every authorization field in a log line is redacted')
})
