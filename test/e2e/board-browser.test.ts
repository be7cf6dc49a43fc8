import { execFile } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { findChromium } from '../helpers/chromium.ts'
import { REDIS_URL } from '../helpers/test-redis.ts'
import { SOURCE_NODE_ARGS } from '../../scripts/lib/source-node.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))
const screenshot = `${root}test/artifacts/board.png`

const skip = findChromium() ? false : 'no chromium binary (apt-get install -y chromium, or set CHROMIUM_PATH): the browser check of the board is skipped'

t.test('an operator logs in to the running service\'s board in chromium and sees its queues, a step and a quarantined message', { skip, timeout: 90_000 }, async (t) => {
  rmSync(screenshot, { force: true })
  // The script is what a person runs by hand; running it here keeps the two from drifting apart.
  const { stdout } = await promisify(execFile)(process.execPath, [...SOURCE_NODE_ARGS, 'scripts/board-screenshot.ts', screenshot], {
    cwd: root,
    env: { ...process.env, TEST_REDIS_URL: REDIS_URL },
    timeout: 80_000,
  })
  const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>
  t.match(result, { ok: true, screenshot, queues: ['order-paid', 'order-shipped', 'user-email-changed', 'user-welcome', 'quarantine'], job: 'invalid-message' })
  const png = readFileSync(screenshot)
  t.same(png.subarray(1, 4).toString(), 'PNG', 'a PNG was saved')
  t.ok(png.length > 20_000, `not a blank page (${png.length} bytes)`)
})
