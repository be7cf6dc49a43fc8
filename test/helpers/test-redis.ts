import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DEFAULT_REDIS_URL, projectRoot } from '../../src/config.ts'

/** Written by test/setup/before.ts when it had to start a Redis for the suite. */
export const startedRedisFile = join(projectRoot, '.tap', 'test-redis.json')

function started (): string | undefined {
  try {
    return (JSON.parse(readFileSync(startedRedisFile, 'utf8')) as { url: string }).url
  } catch {
    return undefined
  }
}

/** The Redis the suite uses: TEST_REDIS_URL, else the one the setup started, else 127.0.0.1:6379. */
export const REDIS_URL = process.env.TEST_REDIS_URL ?? started() ?? DEFAULT_REDIS_URL
