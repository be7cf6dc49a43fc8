import t from 'tap'
import { createBasicCheck } from '../../../src/http/basic-auth.ts'

const header = (credentials: string, scheme = 'Basic') => `${scheme} ${Buffer.from(credentials).toString('base64')}`

t.test('accepts the exact user and password, whatever their characters', async (t) => {
  const check = createBasicCheck('opérateur', 'pa:ss wörd')
  t.ok(check(header('opérateur:pa:ss wörd')), 'a colon belongs to the password; UTF-8 both sides')
  t.ok(check(header('opérateur:pa:ss wörd', 'basic')), 'the scheme is case-insensitive')
})

t.test('refuses everything else', async (t) => {
  const check = createBasicCheck('admin', 'secret')
  for (const presented of [
    undefined, '', 'Basic', 'Basic !!!', 'Bearer secret', header('admin:secret', 'Bearer'),
    header('admin:secreT'), header('Admin:secret'), header('admin:secret '), header('admin'),
    header('secret:admin'), header(':secret'), header('admin:'), `${header('admin:secret')} extra`,
  ]) t.notOk(check(presented), JSON.stringify(presented))
})

t.test('an empty user or password is a configuration error, never an open board', async (t) => {
  t.throws(() => createBasicCheck('', 'secret'))
  t.throws(() => createBasicCheck('admin', ''))
})
