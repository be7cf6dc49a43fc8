import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import t from 'tap'
import { projectRoot } from '../../src/config.ts'

// The suite runs against one Redis: TEST_REDIS_URL, or the one test/setup/before.ts started when
// nothing answered on 6379 (test/helpers/test-redis.ts knows which). A test file that connects to
// 127.0.0.1:6379 on its own, or reads TEST_REDIS_URL itself, misses the started one and waits
// forever for a Redis that is not there.
const testDir = join(projectRoot, 'test')
const GUESS = String.raw`['"\x60]redis://(127\.0\.0\.1|localhost):6379`
const OWN_URL = [/process\.env\.TEST_REDIS_URL/, new RegExp(String.raw`\?\?\s*` + GUESS), new RegExp(String.raw`new Redis\(\s*` + GUESS)]

function testFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return entry.name === 'helpers' || entry.name === 'setup' ? [] : testFiles(path)
    return entry.name.endsWith('.test.ts') ? [path] : []
  })
}

t.test("test files connect to the suite's Redis, never to their own guess of it", async (t) => {
  const files = testFiles(testDir)
  t.ok(files.length > 10, 'the test files were found')
  const offenders = files.filter((file) => OWN_URL.some((pattern) => pattern.test(readFileSync(file, 'utf8'))))
    .map((file) => relative(projectRoot, file))
  t.same(offenders, [], 'import REDIS_URL from test/helpers/test-redis.ts (or helpers/service.ts) instead')
})
