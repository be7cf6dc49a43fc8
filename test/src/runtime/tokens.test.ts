import { spawn } from 'node:child_process'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, projectRoot } from '../../../src/config.ts'
import { resolveTokens, tokenBanner } from '../../../src/runtime/tokens.ts'
import { SOURCE_NODE_ARGS } from '../../../scripts/lib/source-node.ts'

t.test('configured tokens win, all of them (rotation)', async (t) => {
  const result = await resolveTokens({ SEQUIN_WEBHOOK_TOKENS: ['a', 'b'], NODE_ENV: 'production', DATA_DIR: '/nonexistent' })
  t.same(result, { tokens: ['a', 'b'] })
})

t.test('outside production a token is generated once, kept private, and reused', async (t) => {
  const dir = t.testdir({})
  const first = await resolveTokens({ SEQUIN_WEBHOOK_TOKENS: [], NODE_ENV: 'development', DATA_DIR: dir })
  t.equal(first.tokens.length, 1)
  t.ok(first.tokens[0]!.length >= 40, 'a 256-bit token')
  t.equal(first.generatedFile, join(dir, 'webhook-token'))
  t.equal(statSync(first.generatedFile!).mode & 0o777, 0o600)
  const second = await resolveTokens({ SEQUIN_WEBHOOK_TOKENS: [], NODE_ENV: 'development', DATA_DIR: dir })
  t.same(second.tokens, first.tokens, 'a restart keeps the token Sequin was configured with')
})

t.test('an existing empty token file is replaced by a private file holding a token', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'webhook-token')
  writeFileSync(file, '', { mode: 0o644 })
  const { tokens } = await resolveTokens({ SEQUIN_WEBHOOK_TOKENS: [], NODE_ENV: 'development', DATA_DIR: dir })
  t.ok(tokens[0]!.length >= 40, 'a real token, not an empty one')
  t.equal(readFileSync(file, 'utf8'), `${tokens[0]}\n`)
  t.equal(statSync(file).mode & 0o777, 0o600)
})

/** A process that waits for `go` to exist, then resolves the token of each dir in turn. */
const CHILD = `
import { existsSync } from 'node:fs'
const { resolveTokens } = await import(${JSON.stringify(new URL('../../../src/runtime/tokens.ts', import.meta.url).href)})
const [go, ...dirs] = process.argv.slice(1)
process.stdout.write('ready\\n')
while (!existsSync(go)) await new Promise((resolve) => setTimeout(resolve, 1))
const tokens = []
for (const dir of dirs) tokens.push((await resolveTokens({ SEQUIN_WEBHOOK_TOKENS: [], NODE_ENV: 'development', DATA_DIR: dir })).tokens[0])
process.stdout.write(JSON.stringify(tokens) + '\\n')
`

t.test('processes starting at once end with the same token', async (t) => {
  const root = t.testdir({})
  const dirs = Array.from({ length: 20 }, (_, i) => join(root, `data-${i}`))
  const go = join(root, 'go')
  const children = Array.from({ length: 4 }, () => {
    const child = spawn(process.execPath, [...SOURCE_NODE_ARGS, '--input-type=module', '-e', CHILD, go, ...dirs], { cwd: projectRoot })
    let output = ''
    child.stdout.on('data', (chunk) => { output += chunk })
    child.stderr.on('data', (chunk) => { output += chunk })
    const ready = new Promise<void>((resolve) => child.stdout.on('data', () => { if (output.includes('ready')) resolve() }))
    const done = new Promise<string[]>((resolve, reject) => child.once('close', (code) => {
      if (code === 0) resolve(JSON.parse(output.split('\n')[1]!) as string[])
      else reject(new Error(`child exited ${code}: ${output}`))
    }))
    return { ready, done }
  })
  await Promise.all(children.map((child) => child.ready))
  writeFileSync(go, '') // all four start resolving within a millisecond of each other
  const results = await Promise.all(children.map((child) => child.done))
  const split = dirs.filter((dir, i) => {
    const tokens = new Set(results.map((result) => result[i]))
    return tokens.size !== 1 || !tokens.has(readFileSync(join(dir, 'webhook-token'), 'utf8').trim())
  })
  t.same(split, [], 'in every data dir, every process got the token the file holds')
  t.same(dirs.filter((dir) => readdirSync(dir).join() !== 'webhook-token'), [], 'no temporary file left')
})

t.test('production without a token refuses', async (t) => {
  await t.rejects(resolveTokens({ SEQUIN_WEBHOOK_TOKENS: [], NODE_ENV: 'production', DATA_DIR: t.testdir({}) }), ConfigError)
})

t.test('the banner carries the token in a Sequin snippet and a curl example', async (t) => {
  const banner = tokenBanner('tok123', '/data/webhook-token', 3000)
  t.match(banner, 'value: "Bearer tok123"')
  t.match(banner, 'http_endpoint_path: "/webhooks/sequin"')
  t.match(banner, 'curl -sS -X POST http://localhost:3000/webhooks/sequin')
})
