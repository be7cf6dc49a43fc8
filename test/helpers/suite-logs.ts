import { basename } from 'node:path'
import type { Readable } from 'node:stream'
import { faultLog, type FaultLog } from './fault-logs.ts'

/** The running test file (tap runs each in its own process), e.g. `web-sigkill`. */
const testFile = basename(process.argv[1] ?? 'test', '.ts').replace(/\.test$/, '')
let sources = 0

/**
 * A fault-suite log file for one source of this test file: `<test file>.<role>-<n>.log`, so
 * that names never clash within the suite however many processes a file starts.
 */
export function suiteLog (role: string): FaultLog {
  return faultLog(`${testFile}.${role}-${++sources}`)
}

/** Appends everything `stream` emits to `log`, as it arrives. */
export function tee (stream: Readable, log: FaultLog): void {
  stream.on('data', (chunk: Buffer | string) => log.write(chunk.toString()))
}

/**
 * A `logs` array for `startService` that writes each pino line to `log` instead of keeping it
 * (startService only ever pushes onto it), so an in-process service logs into the suite's files
 * at its production level (info) without holding every line in memory.
 */
export function logSink (log: FaultLog): string[] {
  const lines: string[] = []
  lines.push = (...items: string[]) => {
    for (const item of items) log.write(item)
    return 0
  }
  return lines
}
