import { diag, DiagLogLevel } from '@opentelemetry/api'
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources'
import { BatchSpanProcessor, ConsoleSpanExporter, type SpanExporter } from '@opentelemetry/sdk-trace-base'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions'
import type { Logger } from 'pino'
import { spanMakers } from './spans.ts'
import type { TraceExporter, Tracing } from './tracing.ts'

/** Each exporter's package is loaded only when it is the one configured. */
async function exporterOf (kind: TraceExporter): Promise<SpanExporter> {
  switch (kind) {
    case 'otlp-protobuf': return new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter()
    case 'otlp-json': return new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter()
    case 'console': return new ConsoleSpanExporter()
    default: {
      const unreachable: never = kind
      throw new Error(`unknown trace exporter ${String(unreachable)}`)
    }
  }
}

/**
 * The OpenTelemetry SDK for this process, registered globally so that spans a step starts itself
 * (or its instrumented clients do) join the step's span. The exporters read their endpoint,
 * headers and timeouts, the provider its sampler and the batch processor its limits from the
 * standard OTEL_* variables; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the
 * service name "changeflow".
 */
export async function createTracing (exporters: readonly TraceExporter[], log: Logger): Promise<Tracing> {
  // The SDK reports export failures (collector down, refused) through its diagnostic logger.
  const sdkLog = log.child({ component: 'opentelemetry' })
  diag.setLogger({
    error: (message, ...args) => sdkLog.warn({ args }, message),
    warn: (message, ...args) => sdkLog.warn({ args }, message),
    info: () => {},
    debug: () => {},
    verbose: () => {},
  }, DiagLogLevel.WARN)

  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'changeflow' }))
    .merge(detectResources({ detectors: [envDetector] }))
  const spanProcessors = await Promise.all(exporters.map(async (kind) => new BatchSpanProcessor(await exporterOf(kind))))
  const provider = new NodeTracerProvider({ resource, spanProcessors })
  provider.register()
  log.info({ exporters }, 'tracing on: one trace per change')

  return {
    ...spanMakers(provider.getTracer('changeflow')),
    async shutdown () {
      await provider.shutdown().catch((error: unknown) => log.warn({ err: error }, 'could not export the last spans'))
    },
  }
}
