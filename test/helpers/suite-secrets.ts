import { appendFileSync, mkdirSync, readFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { projectRoot } from '../../src/config.ts'

/**
 * The secrets the fault suite hands its services (webhook tokens, dashboard passwords, metrics
 * tokens), one JSON line each, so that its last test (zz-secrets) can check that none of them
 * reached a log line or the test output. Values are fixed and distinctive: a stale line from an
 * earlier run names a secret that must not appear either.
 */
export const secretsFile = join(projectRoot, '.tap', 'fault-secrets.jsonl')

export interface SuiteSecret {
  /** What it is, for the failure message: "web-sigkill webhook token". */
  name: string
  value: string
  /** The test file that registered it. */
  file: string
}

const testFile = basename(process.argv[1] ?? 'test')

/** Registers `value` as a secret the suite used, and returns it. */
export function suiteSecret (name: string, value: string): string {
  mkdirSync(dirname(secretsFile), { recursive: true })
  appendFileSync(secretsFile, `${JSON.stringify({ name, value, file: testFile } satisfies SuiteSecret)}\n`)
  return value
}

/** A dashboard password, and the basic-auth credentials it travels in (`user:password`, base64). */
export function suiteBoardSecret (name: string, username: string, password: string): string {
  suiteSecret(`${name} (basic credentials, encoded)`, Buffer.from(`${username}:${password}`).toString('base64'))
  return suiteSecret(name, password)
}

/** Every secret registered so far, each value once. */
export function readSecrets (): SuiteSecret[] {
  let text = ''
  try {
    text = readFileSync(secretsFile, 'utf8')
  } catch {}
  const byValue = new Map<string, SuiteSecret>()
  for (const line of text.split('\n').filter(Boolean)) {
    const secret = JSON.parse(line) as SuiteSecret
    if (!byValue.has(secret.value)) byValue.set(secret.value, secret)
  }
  return [...byValue.values()]
}
