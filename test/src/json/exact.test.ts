import t from 'tap'
import { MAX_JSON_DEPTH, nestingDepth, parseExactJson, previewJson, quoteUnsafeIntegers } from '../../../src/json/exact.ts'

const nested = (depth: number, leaf = '1') => '{"a":'.repeat(depth) + leaf + '}'.repeat(depth)

t.test('integers beyond 2^53 come back as their exact decimal text', async (t) => {
  const { value } = parseExactJson('{"id":9223372036854775807,"small":42,"neg":-9223372036854775808,"edge":9007199254740992,"safe":9007199254740991}')
  t.same(value, { id: '9223372036854775807', small: 42, neg: '-9223372036854775808', edge: '9007199254740992', safe: 9007199254740991 })
})

t.test('what JSON.parse reads exactly is left to JSON.parse', async (t) => {
  const text = '{"f":1.5,"e":1e300,"big":12345678901234567890.5,"s":"12345678901234567890","z":0,"n":-1}'
  t.same(parseExactJson(text).value, JSON.parse(text), 'floats, exponents and strings untouched')
  t.same(parseExactJson('{"x":1e300,"id":12345678901234567890}').value, { x: 1e300, id: '12345678901234567890' },
    'an integral float does not stop the rewrite, and is not rewritten')
})

t.test('digits inside strings, escaped quotes and keys are never rewritten', async (t) => {
  const text = '{"a\\"12345678901234567890":"x\\\\","b":"say \\"12345678901234567890\\"","12345678901234567890":12345678901234567890}'
  t.same(parseExactJson(text).value, { 'a"12345678901234567890': 'x\\', b: 'say "12345678901234567890"', '12345678901234567890': '12345678901234567890' })
  t.equal(quoteUnsafeIntegers('[1,2,"3"]'), '[1,2,"3"]', 'nothing to quote: the same text')
  t.equal(quoteUnsafeIntegers('[99999999999999999999 , -99999999999999999999]'), '["99999999999999999999" , "-99999999999999999999"]')
})

t.test('__proto__ and constructor are own properties, never a prototype', async (t) => {
  const { value } = parseExactJson('{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}},"id":12345678901234567890}')
  const object = value as Record<string, unknown>
  t.equal(Object.getPrototypeOf(object), Object.prototype)
  t.same(Object.keys(object), ['__proto__', 'constructor', 'id'])
  t.same(object.__proto__, { polluted: true }) // eslint-disable-line no-proto
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'nothing reached Object.prototype')
})

t.test('depth: measured without recursion, at any depth', async (t) => {
  t.equal(parseExactJson('1').depth, 0)
  t.equal(parseExactJson('{}').depth, 1)
  t.equal(parseExactJson('{"data":[{"record":{}}]}').depth, 4)
  t.equal(parseExactJson(nested(50_000)).depth, 50_000, 'far past what JSON.stringify can serialise')
  t.same((parseExactJson(nested(20_000, '12345678901234567890')).value as { a: unknown }) !== undefined, true,
    'the exact pass also takes any depth')
  t.equal(nestingDepth(JSON.parse(nested(5_000))), MAX_JSON_DEPTH + 1, 'nestingDepth stops counting past its limit')
  t.equal(nestingDepth({ a: [1, { b: 2 }] }), 3)
})

t.test('invalid JSON is a SyntaxError, as with JSON.parse', async (t) => {
  t.throws(() => parseExactJson('{"a":'), SyntaxError)
  t.throws(() => parseExactJson(''), SyntaxError)
})

t.test('previewJson: a readable, bounded excerpt of anything', async (t) => {
  const deep = JSON.parse(nested(10_000))
  const preview = previewJson(deep)
  t.match(preview, /^\{"a":\{"a":/)
  t.match(preview, /\[Object\]/, 'levels past the preview depth are named, not serialised')
  t.ok(previewJson({ s: 'x'.repeat(100_000) }, 1_000).length < 1_100, 'cut at maxChars')
  t.match(previewJson({ s: 'x'.repeat(2_000) }, 1_000), /more characters\)$/)
})

t.test('numbers beyond any double keep their text: JSON.parse makes them Infinity (and JSON.stringify null)', async (t) => {
  const huge = `1${'0'.repeat(400)}`
  t.same(parseExactJson(`{"n":${huge},"m":-${huge},"e":1e400,"small":7}`).value, { n: huge, m: `-${huge}`, e: '1e400', small: 7 })
  t.same(parseExactJson(`[${huge}]`).value, [huge], 'alone in the body too, with no other large integer to set it off')
})
