import t from 'tap'
import pino from 'pino'
import { ConfigError, loadConfig } from '../../../src/config.ts'
import { startTracing, traceExporters } from '../../../src/tracing/tracing.ts'

const exporters = (env: Record<string, string>) => traceExporters(loadConfig(env))

t.test('tracing is off unless an exporter or an OTLP endpoint is configured', async (t) => {
  t.same(exporters({}), [])
  t.equal(await startTracing(loadConfig({}), pino({ level: 'silent' })), undefined, 'nothing is started')
  t.same(exporters({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_SERVICE_NAME: 'x' }), [],
    'other OTEL_ variables alone do not turn it on')
})

t.test('an OTLP endpoint turns it on, over HTTP with protobuf unless JSON is asked for', async (t) => {
  t.same(exporters({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), ['otlp-protobuf'])
  t.same(exporters({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }), ['otlp-protobuf'])
  t.same(exporters({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }), ['otlp-json'])
  const both = { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' }
  t.same(exporters({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', ...both }), ['otlp-protobuf'], 'the traces protocol wins')
})

t.test('OTEL_TRACES_EXPORTER names the exporters; none, or OTEL_SDK_DISABLED, turns tracing off', async (t) => {
  t.same(exporters({ OTEL_TRACES_EXPORTER: 'console' }), ['console'])
  t.same(exporters({ OTEL_TRACES_EXPORTER: 'otlp' }), ['otlp-protobuf'], 'the SDK\'s default endpoint, localhost:4318')
  t.same(exporters({ OTEL_TRACES_EXPORTER: 'otlp,console', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }), ['otlp-json', 'console'])
  t.same(exporters({ OTEL_TRACES_EXPORTER: 'console', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), ['console'],
    'named exporters win over an endpoint')
  t.same(exporters({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), [])
  t.same(exporters({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), [])
})

t.test('settings it cannot honour are refused at start', async (t) => {
  for (const env of [
    { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' },
    { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' },
    { OTEL_TRACES_EXPORTER: 'zipkin' },
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' },
  ]) {
    const [key] = Object.keys(env)
    const error = t.throws(() => loadConfig(env), ConfigError) as Error
    t.match(error.message, new RegExp(`\\s${key}(\\.\\d+)?: `), `${JSON.stringify(env)} is refused, naming the variable`)
  }
})
