import t, { type Test } from 'tap'
import { ConfigError, loadConfig, projectRoot } from '../../src/config.ts'

const DAY = 86_400_000

function configError (t: Test, env: Record<string, string>, key: string) {
  const error = t.throws(() => loadConfig(env), ConfigError, `${key}=${env[key]} is refused`)
  t.equal((error as Error).name, 'ConfigError')
  t.match((error as Error).message, new RegExp(`(^|\\s)${key}:`), `the message names ${key}`)
}

t.test('defaults', async (t) => {
  const config = loadConfig({})
  t.equal(config.PORT, 3000)
  t.equal(config.HOST, '0.0.0.0')
  t.equal(config.INVALID_MESSAGES, 'quarantine')
  t.equal(config.DEDUP_TTL, 7 * DAY)
  t.equal(config.BODY_LIMIT, 64 * 1024 * 1024)
  t.equal(config.ENQUEUE_TIMEOUT, 5_000)
  t.equal(config.REDIS_PREFIX, 'changeflow')
  t.equal(config.EMBEDDED_REDIS, true)
  t.same(config.SEQUIN_WEBHOOK_TOKENS, [])
  t.equal(config.REDIS_URL, undefined)
  t.equal(config.JOBS_DIR, `${projectRoot}jobs`, 'JOBS_DIR is relative to the project, not the cwd')
})

t.test('durations', async (t) => {
  // A DEDUP_TTL shorter than KEEP_COMPLETED_AGE (1 day by default) is refused: see below.
  const ttl = (text: string) => loadConfig({ DEDUP_TTL: text, KEEP_COMPLETED_AGE: '0' }).DEDUP_TTL
  t.equal(ttl('30s'), 30_000)
  t.equal(ttl('15m'), 15 * 60_000)
  t.equal(loadConfig({ DEDUP_TTL: '7d' }).DEDUP_TTL, 7 * DAY)
  t.equal(ttl('2h'), 2 * 3_600_000)
  t.equal(ttl('250ms'), 250)
  t.equal(ttl('60'), 60_000, 'a bare DEDUP_TTL is in seconds')
  t.equal(loadConfig({ ENQUEUE_TIMEOUT: '60' }).ENQUEUE_TIMEOUT, 60, 'a bare ENQUEUE_TIMEOUT is in ms')
  t.equal(loadConfig({ ENQUEUE_TIMEOUT: '2s' }).ENQUEUE_TIMEOUT, 2_000)
  t.equal(loadConfig({ STEP_BACKOFF: '1.5s' }).STEP_BACKOFF, 1_500, 'fractions are allowed')
  t.equal(loadConfig({ DEDUP_TTL: ' 1D ' }).DEDUP_TTL, DAY, 'trimmed and case-insensitive')
})

t.test('sizes', async (t) => {
  t.equal(loadConfig({ BODY_LIMIT: '10mb' }).BODY_LIMIT, 10 * 1024 * 1024)
  t.equal(loadConfig({ BODY_LIMIT: '1048576' }).BODY_LIMIT, 1_048_576)
  t.equal(loadConfig({ BODY_LIMIT: '512kb' }).BODY_LIMIT, 512 * 1024)
  t.equal(loadConfig({ BODY_LIMIT: '1GB' }).BODY_LIMIT, 1024 ** 3)
  configError(t, { BODY_LIMIT: '1.5mb' }, 'BODY_LIMIT')
  configError(t, { BODY_LIMIT: 'big' }, 'BODY_LIMIT')
})

t.test('SEQUIN_WEBHOOK_TOKENS is a trimmed comma list without empty items', async (t) => {
  t.same(loadConfig({ SEQUIN_WEBHOOK_TOKENS: ' a , b,,c ,' }).SEQUIN_WEBHOOK_TOKENS, ['a', 'b', 'c'])
  t.same(loadConfig({ SEQUIN_WEBHOOK_TOKENS: 'only' }).SEQUIN_WEBHOOK_TOKENS, ['only'])
  t.same(loadConfig({ SEQUIN_WEBHOOK_TOKENS: ' , ,' }).SEQUIN_WEBHOOK_TOKENS, [])
})

t.test('empty-string values are unset', async (t) => {
  const config = loadConfig({ PORT: '', DEDUP_TTL: '', INVALID_MESSAGES: '', REDIS_URL: '', EMBEDDED_REDIS: '' })
  t.equal(config.PORT, 3000)
  t.equal(config.DEDUP_TTL, 7 * DAY)
  t.equal(config.INVALID_MESSAGES, 'quarantine')
  t.equal(config.REDIS_URL, undefined)
  t.equal(config.EMBEDDED_REDIS, true)
  t.equal(loadConfig({ PORT: undefined }).PORT, 3000)
})

t.test('explicit values are read', async (t) => {
  const config = loadConfig({
    PORT: '8080',
    INVALID_MESSAGES: 'reject',
    REDIS_URL: 'redis://localhost:6379',
    REDIS_PREFIX: 'cf_test-1',
    EMBEDDED_REDIS: '0',
    WORKER_CONCURRENCY: '2',
  })
  t.equal(config.PORT, 8080)
  t.equal(config.INVALID_MESSAGES, 'reject')
  t.equal(config.REDIS_URL, 'redis://localhost:6379')
  t.equal(config.REDIS_PREFIX, 'cf_test-1')
  t.equal(config.EMBEDDED_REDIS, false)
  t.equal(config.WORKER_CONCURRENCY, 2)
})

t.test('the config is frozen', async (t) => {
  const config = loadConfig({})
  t.ok(Object.isFrozen(config))
  t.throws(() => { (config as { PORT: number }).PORT = 1 }, TypeError)
  t.equal(config.PORT, 3000)
})

t.test('invalid values throw a ConfigError naming the key', async (t) => {
  configError(t, { PORT: 'abc' }, 'PORT')
  configError(t, { PORT: '70000' }, 'PORT')
  configError(t, { PORT: '80.5' }, 'PORT')
  configError(t, { DEDUP_TTL: 'soon' }, 'DEDUP_TTL')
  configError(t, { DEDUP_TTL: '5w' }, 'DEDUP_TTL')
  configError(t, { DEDUP_TTL: '   ' }, 'DEDUP_TTL')
  configError(t, { INVALID_MESSAGES: 'drop' }, 'INVALID_MESSAGES')
  configError(t, { REDIS_PREFIX: 'a:b' }, 'REDIS_PREFIX')
  configError(t, { REDIS_URL: 'not a url' }, 'REDIS_URL')
  configError(t, { EMBEDDED_REDIS: 'yes' }, 'EMBEDDED_REDIS')
  configError(t, { WORKER_CONCURRENCY: '0' }, 'WORKER_CONCURRENCY')
})

t.test('every invalid key is reported at once', async (t) => {
  const error = t.throws(() => loadConfig({ PORT: 'abc', REDIS_PREFIX: 'a:b' })) as Error
  t.match(error.message, /PORT:/)
  t.match(error.message, /REDIS_PREFIX:/)
})

t.test('settings that contradict each other are refused', async (t) => {
  configError(t, { DEDUP_TTL: '1h', KEEP_COMPLETED_AGE: '2h' }, 'DEDUP_TTL')
  t.equal(loadConfig({ DEDUP_TTL: '2h', KEEP_COMPLETED_AGE: '2h' }).DEDUP_TTL, 2 * 3_600_000, 'equal is fine')
  configError(t, { WORKER_METRICS_PORT: '9100' }, 'WORKER_METRICS_PORT')
  t.equal(loadConfig({ METRICS_PORT: '9100' }).METRICS_PORT, 9100)
})

t.test('batch and quarantine bounds', async (t) => {
  t.equal(loadConfig({}).MAX_BATCH_MESSAGES, 1_000, "Sequin's largest batch")
  t.equal(loadConfig({}).QUARANTINE_LIMIT, 10_000)
  configError(t, { MAX_BATCH_MESSAGES: '0' }, 'MAX_BATCH_MESSAGES')
  configError(t, { QUARANTINE_LIMIT: '-1' }, 'QUARANTINE_LIMIT')
  configError(t, { QUARANTINE_LIMIT: '2' }, 'QUARANTINE_LIMIT')
  t.equal(loadConfig({ QUARANTINE_LIMIT: '2', MAX_BATCH_MESSAGES: '2' }).QUARANTINE_LIMIT, 2,
    'a batch of invalid messages always fits an empty quarantine')
})

t.test('durations that can never work are refused: Redis refuses PX 0, a zero timer spins', async (t) => {
  configError(t, { DEDUP_TTL: '0', KEEP_COMPLETED_AGE: '0' }, 'DEDUP_TTL')
  configError(t, { DEDUP_TTL: '0.4ms', KEEP_COMPLETED_AGE: '0' }, 'DEDUP_TTL')
  for (const key of ['ENQUEUE_TIMEOUT', 'LOCK_DURATION', 'STALLED_INTERVAL', 'RECONCILE_INTERVAL', 'REDIS_CHECK_INTERVAL']) {
    configError(t, { [key]: '0' }, key)
  }
  t.equal(loadConfig({ STEP_BACKOFF: '0', SHUTDOWN_GRACE: '0', KEEP_COMPLETED_AGE: '0' }).STEP_BACKOFF, 0, 'where 0 means something, it is allowed')
})
