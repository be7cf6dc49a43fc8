// Runs once after the suite (tap's `after`): stops the Redis that before.ts started, if any.
import { readFileSync, rmSync } from 'node:fs'
import { startedRedisFile } from '../helpers/test-redis.ts'

try {
  const { pidfile, dir } = JSON.parse(readFileSync(startedRedisFile, 'utf8')) as { pidfile: string, dir: string }
  process.kill(Number(readFileSync(pidfile, 'utf8').trim()), 'SIGTERM')
  await new Promise((resolve) => setTimeout(resolve, 200))
  rmSync(dir, { recursive: true, force: true })
  rmSync(startedRedisFile, { force: true })
} catch {}
