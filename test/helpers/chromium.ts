import { execFileSync } from 'node:child_process'

/** Debian's chromium (or CHROMIUM_PATH), for the dashboard's browser check; null when absent. */
export function findChromium (): string | null {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH
  try {
    return execFileSync('which', ['chromium'], { encoding: 'utf8' }).trim() || null
  } catch {
    return null
  }
}
