import { statSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError } from '../../../src/config.ts'
import { resolveTokens, tokenBanner } from '../../../src/runtime/tokens.ts'

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

t.test('production without a token refuses', async (t) => {
  await t.rejects(resolveTokens({ SEQUIN_WEBHOOK_TOKENS: [], NODE_ENV: 'production', DATA_DIR: t.testdir({}) }), ConfigError)
})

t.test('the banner carries the token in a Sequin snippet and a curl example', async (t) => {
  const banner = tokenBanner('tok123', '/data/webhook-token', 3000)
  t.match(banner, 'value: "Bearer tok123"')
  t.match(banner, 'http_endpoint_path: "/webhooks/sequin"')
  t.match(banner, 'curl -sS -X POST http://localhost:3000/webhooks/sequin')
})
