import t from 'tap'
import { ConfigError, loadConfig } from '../../src/config.ts'
import { preflight } from '../../src/main/preflight.ts'

const production = { NODE_ENV: 'production', REDIS_URL: 'redis://redis.internal:6379', SEQUIN_WEBHOOK_TOKENS: 'tok', LOG_ROW_KEY_SECRET: 'k'.repeat(32) }
const check = (env: Record<string, string>, role: 'all' | 'web' | 'worker') => () => preflight(loadConfig(env), role)

t.test('production: /metrics is never open on the web side', async (t) => {
  for (const role of ['web', 'all'] as const) {
    t.throws(check(production, role), new ConfigError(), `${role} refuses`)
    t.throws(check(production, role), { message: /METRICS_TOKEN or METRICS_PORT is required with NODE_ENV=production/ })
    t.doesNotThrow(check({ ...production, METRICS_TOKEN: 'scrape' }, role), `${role} starts with METRICS_TOKEN`)
    t.doesNotThrow(check({ ...production, METRICS_PORT: '9464' }, role), `${role} starts with METRICS_PORT`)
  }
  t.doesNotThrow(check(production, 'worker'), 'a worker serves no metrics without METRICS_PORT: nothing to protect')
  t.doesNotThrow(check({ REDIS_URL: 'redis://x:6379' }, 'web'), 'development keeps /metrics open on the webhook port')
})

t.test('production: REDIS_URL is required for every role; no fallback, no private redis-server', async (t) => {
  const { REDIS_URL: _omitted, ...withoutRedis } = { ...production, METRICS_TOKEN: 'scrape' }
  for (const role of ['all', 'web', 'worker'] as const) {
    t.throws(check(withoutRedis, role), { name: 'ConfigError', message: /REDIS_URL \(or REDIS_CLUSTER_NODES\) is required with NODE_ENV=production.*private redis-server/s }, role)
  }
  t.doesNotThrow(check({ METRICS_TOKEN: 'x' }, 'all'), 'development may look for one, or start one')
})

t.test('every problem at once, one per line', async (t) => {
  const error = t.throws(check({ NODE_ENV: 'production' }, 'all')) as Error
  t.match(error.message, /^invalid configuration for this web and worker process:\n {2}REDIS_URL .*\n {2}SEQUIN_WEBHOOK_TOKENS .*\n {2}METRICS_TOKEN or METRICS_PORT .*\n {2}LOG_ROW_KEY_SECRET .*$/)
})

t.test('production hashes row keys in logs: processes that run steps need the secret', async (t) => {
  const { LOG_ROW_KEY_SECRET: _omitted, ...withoutSecret } = { ...production, METRICS_TOKEN: 'scrape' }
  for (const role of ['all', 'worker'] as const) {
    t.throws(check(withoutSecret, role), { message: /LOG_ROW_KEY_SECRET is required with LOG_ROW_KEYS=hash \(the default with NODE_ENV=production\)/ }, role)
    t.doesNotThrow(check({ ...withoutSecret, LOG_ROW_KEYS: 'plain' }, role), `${role} logging keys as they are`)
  }
  t.doesNotThrow(check(withoutSecret, 'web'), 'a web-only process logs no step')
  t.throws(check({ LOG_ROW_KEYS: 'hash' }, 'worker'), { message: /^invalid configuration.*\n {2}LOG_ROW_KEY_SECRET is required with LOG_ROW_KEYS=hash: /s }, 'hash chosen in development')
  t.equal(loadConfig({}).LOG_ROW_KEYS, 'plain', 'development logs keys by default')
  t.equal(loadConfig({ NODE_ENV: 'production' }).LOG_ROW_KEYS, 'hash', 'production hashes them by default')
  t.throws(() => loadConfig({ LOG_ROW_KEY_SECRET: 'short' }), { message: /LOG_ROW_KEY_SECRET: at least 16 characters/ })
})

t.test('METRICS_PORT must not be the webhook port', async (t) => {
  t.throws(check({ PORT: '9464', METRICS_PORT: '9464' }, 'web'), { message: /METRICS_PORT must differ from PORT \(both 9464\)/ })
  t.doesNotThrow(check({ PORT: '9464', METRICS_PORT: '9464' }, 'worker'), 'a worker does not listen on PORT')
  t.doesNotThrow(check({ PORT: '0', METRICS_PORT: '0' }, 'web'), 'two ephemeral ports do not collide')
})
