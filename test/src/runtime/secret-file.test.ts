import { readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { readOrCreateSecret } from '../../../src/runtime/secret-file.ts'

let counter = 0
const generate = () => `secret-${++counter}-${Math.random().toString(36).slice(2)}`

t.test('a missing file is created private, and read back on the next start', async (t) => {
  const file = join(t.testdir({}), 'nested', 'secret')
  let calls = 0
  const first = await readOrCreateSecret(file, () => { calls++; return generate() })
  t.equal(statSync(file).mode & 0o777, 0o600)
  t.equal(readFileSync(file, 'utf8'), `${first}\n`)
  t.equal(await readOrCreateSecret(file, () => { calls++; return generate() }), first, 'kept')
  t.equal(calls, 1, 'generated once')
})

t.test('callers racing to create it all end with one secret, and no temporary file is left', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'secret')
  const secrets = await Promise.all(Array.from({ length: 8 }, () => readOrCreateSecret(file, generate)))
  t.equal(new Set(secrets).size, 1, 'one secret')
  t.equal(readFileSync(file, 'utf8').trim(), secrets[0])
  t.same(readdirSync(dir), ['secret'])
})

t.test('an empty file is replaced by a private file holding a secret', async (t) => {
  for (const content of ['', '\n', '  \n']) {
    const dir = t.testdir({})
    const file = join(dir, 'secret')
    writeFileSync(file, content, { mode: 0o644 })
    const secret = await readOrCreateSecret(file, generate)
    t.ok(secret.length > 10, `${JSON.stringify(content)}: a real secret`)
    t.equal(readFileSync(file, 'utf8'), `${secret}\n`)
    t.equal(statSync(file).mode & 0o777, 0o600, 'mode 0600, not the empty file\'s 0644')
    t.same(readdirSync(dir), ['secret'], 'no lock or temporary file left')
  }
})

t.test('callers racing to replace an empty file all end with one secret', async (t) => {
  const dir = t.testdir({ secret: '' })
  const file = join(dir, 'secret')
  const secrets = await Promise.all(Array.from({ length: 8 }, () => readOrCreateSecret(file, generate)))
  t.equal(new Set(secrets).size, 1, 'one secret')
  t.equal(readFileSync(file, 'utf8').trim(), secrets[0])
  t.same(readdirSync(dir), ['secret'])
})

t.test('a lock left by a process that died does not block the next start forever', async (t) => {
  const dir = t.testdir({ secret: '', 'secret.lock': '' })
  const old = new Date(Date.now() - 60_000)
  utimesSync(join(dir, 'secret.lock'), old, old)
  const secret = await readOrCreateSecret(join(dir, 'secret'), generate)
  t.equal(readFileSync(join(dir, 'secret'), 'utf8').trim(), secret)
  t.same(readdirSync(dir), ['secret'])
})

t.test('a file holding a secret is read as it is, trimmed, and never rewritten', async (t) => {
  const dir = t.testdir({ secret: '  chosen-by-hand  \n' })
  t.equal(await readOrCreateSecret(join(dir, 'secret'), generate), 'chosen-by-hand')
  t.equal(readFileSync(join(dir, 'secret'), 'utf8'), '  chosen-by-hand  \n')
})

t.test('a path that cannot be read is an error, not a reason to overwrite it', async (t) => {
  const dir = t.testdir({ secret: { inside: 'a directory, not a file' } })
  await t.rejects(readOrCreateSecret(join(dir, 'secret'), generate), { code: 'EISDIR' })
})
