import t from 'tap'
import { seeded } from '../../src/simulate/random.ts'
import { fixtureMessages, startService } from '../helpers/service.ts'

const service = await startService({ workers: false })
t.teardown(() => service.close())
const random = seeded(7)
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!
const template = fixtureMessages('batch-mixed-orders-users')

function junk (depth = 0): unknown {
  switch (Math.floor(random() * (depth > 3 ? 6 : 8))) {
    case 0: return null
    case 1: return random() < 0.5
    case 2: return pick([0, -1, 1e308, -0, 2 ** 53 + 1, 3.14])
    case 3: return pick(['', 'insert', '\u0000', '💥', 'x'.repeat(5000), '__proto__', '2025-13-45T99:99:99Z'])
    case 4: return pick(['update', 'read', 'delete'])
    case 5: return {}
    case 6: return Array.from({ length: Math.floor(random() * 4) }, () => junk(depth + 1))
    default: return Object.fromEntries(Array.from({ length: Math.floor(random() * 4) }, (_, i) => [pick(['record', 'metadata', 'action', 'changes', `k${i}`]), junk(depth + 1)]))
  }
}

/** A real message with one field, somewhere, replaced by junk or removed. */
function mutate (message: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(message)
  let node: Record<string, unknown> = copy
  for (;;) {
    const keys = Object.keys(node)
    if (keys.length === 0) return copy
    const key = pick(keys)
    const value = node[key]
    if (value && typeof value === 'object' && !Array.isArray(value) && random() < 0.5) {
      node = value as Record<string, unknown>
      continue
    }
    if (random() < 0.3) delete node[key]
    else node[key] = junk()
    return copy
  }
}

t.test('fuzzed bodies: clear 2xx/4xx answers, never a 5xx', async (t) => {
  const statuses = new Map<number, number>()
  for (let i = 0; i < 400; i++) {
    const kind = i % 4
    let body: string
    if (kind === 0) body = JSON.stringify({ data: Array.from({ length: 1 + Math.floor(random() * 5) }, () => mutate(pick(template))) })
    else if (kind === 1) body = JSON.stringify(mutate(pick(template)))
    else if (kind === 2) body = JSON.stringify(junk())
    else {
      const text = JSON.stringify({ data: [pick(template)] })
      const cut = Math.floor(random() * text.length)
      body = text.slice(0, cut) + pick(['', '"', '}', '\\', '\u0000', ',,']) + text.slice(cut + 1)
    }
    const response = await service.post(body)
    statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1)
    if (response.statusCode >= 500) t.fail(`${response.statusCode} for ${body.slice(0, 300)}: ${response.body}`)
  }
  t.comment(`statuses: ${[...statuses].map(([status, n]) => `${status}×${n}`).join(' ')}`)
  t.ok([...statuses.keys()].every((status) => [200, 400].includes(status)), 'only 200 (accepted or quarantined) and 400 (unparseable)')
  t.ok((statuses.get(200) ?? 0) > 100 && (statuses.get(400) ?? 0) > 10, 'both outcomes were exercised')
  const ready = await service.web.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 200, 'the service is still ready')
})
