import { appendFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { projectRoot } from '../../src/config.ts'

/**
 * Every log line of the fault suite (in-process services and spawned processes alike) is kept
 * here, one file per source, so that the suite's last test can check that no secret reached a
 * log line anywhere. `npm run test:faults` empties it first.
 */
export const faultLogDir = join(projectRoot, '.tap', 'fault-logs')

export interface FaultLog {
  path: string
  /** Appends text (one or more complete or partial lines) as it arrives. */
  write (text: string): void
}

/** A log file for one source; `name` should be unique within the suite (test file + role). */
export function faultLog (name: string): FaultLog {
  mkdirSync(faultLogDir, { recursive: true })
  const path = join(faultLogDir, `${name.replace(/[^\w.-]+/g, '_')}.log`)
  return { path, write: (text) => appendFileSync(path, text) }
}
