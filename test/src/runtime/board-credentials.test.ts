import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { boardBanner, resolveBoardCredentials } from '../../../src/runtime/board-credentials.ts'

t.test('configured credentials win, in production too, and nothing is written', async (t) => {
  const dir = t.testdir({})
  const result = await resolveBoardCredentials({ BOARD_USERNAME: 'ops', BOARD_PASSWORD: 's3cret-pass', NODE_ENV: 'production', DATA_DIR: dir })
  t.same(result, { enabled: true, username: 'ops', password: 's3cret-pass' })
  t.throws(() => statSync(join(dir, 'board-password')), { code: 'ENOENT' })
})

t.test('a configured password without a user logs in as admin', async (t) => {
  const result = await resolveBoardCredentials({ BOARD_PASSWORD: 'pw', NODE_ENV: 'production', DATA_DIR: '/nonexistent' })
  t.same(result, { enabled: true, username: 'admin', password: 'pw' })
})

t.test('production without a password: the board is off, with a reason to log', async (t) => {
  for (const config of [
    { NODE_ENV: 'production', DATA_DIR: t.testdir({}) },
    { BOARD_USERNAME: 'ops', BOARD_PASSWORD: '  ', NODE_ENV: 'production', DATA_DIR: t.testdir({}) },
  ]) {
    const result = await resolveBoardCredentials(config)
    t.equal(result.enabled, false)
    if (!result.enabled) t.match(result.reason, 'BOARD_PASSWORD')
    t.throws(() => statSync(join(config.DATA_DIR, 'board-password')), { code: 'ENOENT' }, 'no password generated in production')
  }
})

t.test('outside production a password is generated once, kept private, and reused', async (t) => {
  const dir = join(t.testdir({}), 'nested')
  const first = await resolveBoardCredentials({ NODE_ENV: 'development', DATA_DIR: dir })
  if (!first.enabled) throw new Error('expected the board on')
  t.equal(first.username, 'admin')
  t.ok(first.password.length >= 32, 'a 192-bit password')
  t.equal(first.generatedFile, join(dir, 'board-password'))
  t.equal(statSync(first.generatedFile!).mode & 0o777, 0o600)
  t.equal(readFileSync(first.generatedFile!, 'utf8'), `${first.password}\n`)

  const second = await resolveBoardCredentials({ BOARD_USERNAME: 'me', NODE_ENV: 'test', DATA_DIR: dir })
  t.same(second, { enabled: true, username: 'me', password: first.password, generatedFile: first.generatedFile }, 'a restart keeps the password')
})

t.test('two processes starting at once end up with one password', async (t) => {
  const dir = t.testdir({})
  const results = await Promise.all([1, 2, 3].map(() => resolveBoardCredentials({ NODE_ENV: 'development', DATA_DIR: dir })))
  const passwords = new Set(results.map((result) => result.enabled ? result.password : ''))
  t.equal(passwords.size, 1)
  t.equal(readFileSync(join(dir, 'board-password'), 'utf8').trim(), [...passwords][0])
  t.same(readdirSync(dir), ['board-password'], 'no temporary files left behind')
})

t.test('an empty password file is replaced, never used as an empty password', async (t) => {
  const dir = t.testdir({ 'board-password': '\n' })
  const result = await resolveBoardCredentials({ NODE_ENV: 'development', DATA_DIR: dir })
  if (!result.enabled) throw new Error('expected the board on')
  t.ok(result.password.length >= 32)
  t.equal(readFileSync(join(dir, 'board-password'), 'utf8').trim(), result.password)
})

t.test('an edited password file is read as it is, without surrounding whitespace', async (t) => {
  const dir = t.testdir({})
  writeFileSync(join(dir, 'board-password'), '  chosen-by-hand  \n')
  const result = await resolveBoardCredentials({ NODE_ENV: 'development', DATA_DIR: dir })
  t.match(result, { enabled: true, password: 'chosen-by-hand' })
})

t.test('the banner names the URL, the user and the file, never the password', async (t) => {
  const banner = boardBanner({ username: 'admin', password: 'generated-pw', generatedFile: '/data/board-password' }, 3000)
  t.match(banner, 'http://localhost:3000/admin/queues')
  t.match(banner, '"admin"')
  t.match(banner, 'generated-pw', 'a generated development password is shown, like the token')
  t.match(banner, '/data/board-password')
  const configured = boardBanner({ username: 'ops', password: 'configured-pw' }, 8080)
  t.match(configured, 'BOARD_PASSWORD')
  t.notMatch(configured, 'configured-pw', 'a configured password is never printed')
})
