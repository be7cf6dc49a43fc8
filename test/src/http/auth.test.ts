import t from 'tap'
import { createTokenCheck } from '../../../src/http/auth.ts'

t.test('accepts any configured token, as a Bearer credential only', async (t) => {
  const check = createTokenCheck(['old-token', 'new-token'])
  t.equal(check('Bearer old-token'), true)
  t.equal(check('Bearer new-token'), true)
  t.equal(check('bearer new-token'), true, 'the scheme is case-insensitive')
  t.equal(check('Bearer other'), false)
  t.equal(check('Bearer new-token-and-more'), false, 'a longer token with a valid prefix is refused')
  t.equal(check('Bearer new'), false, 'a prefix of a valid token is refused')
  t.equal(check('new-token'), false, 'the bare token without the scheme is refused')
  t.equal(check('Basic new-token'), false)
  t.equal(check(undefined), false)
  t.equal(check(''), false)
  t.equal(check('Bearer '), false)
})

t.test('an empty configured token never matches an empty presented one', async (t) => {
  const check = createTokenCheck([''])
  t.equal(check('Bearer '), false)
  t.equal(check(undefined), false)
})
