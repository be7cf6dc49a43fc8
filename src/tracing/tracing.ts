import type { Job } from 'bullmq'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import type { BatchPlan } from '../ingest/plan.ts'
import type { StepJobHeader } from '../ingest/job-data.ts'

export type StepProcessor<T extends StepJobHeader> = (job: Job<T>, token?: string) => Promise<unknown>

/**
 * OpenTelemetry tracing: one trace per change, from its arrival to its run's last step, however
 * long that takes. It exists only when configured: otherwise nothing of the SDK is loaded, and
 * callers hold `undefined` and skip every call.
 */
export interface Tracing {
  /** Adds a SERVER span per request to the routes of `app`, active while the request is handled. */
  requests (app: FastifyInstance): void
  /**
   * Starts each planned change's trace with a span linked to the request's, and writes the
   * change's trace context (W3C `traceparent`) into its jobs' data, where every later step finds it.
   */
  changes (plan: BatchPlan): void
  /** The same processor, each attempt of a step a span in its change's trace. */
  steps<T extends StepJobHeader> (processor: StepProcessor<T>): StepProcessor<T>
  /** Exports the spans still buffered, then stops. */
  shutdown (): Promise<void>
}

export type TraceExporter = 'otlp-protobuf' | 'otlp-json' | 'console'

type TracingConfig = Pick<Config, 'OTEL_SDK_DISABLED' | 'OTEL_TRACES_EXPORTER' | 'OTEL_EXPORTER_OTLP_ENDPOINT' |
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' | 'OTEL_EXPORTER_OTLP_PROTOCOL' | 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'>

/**
 * Where spans go, by OpenTelemetry's standard variables: nowhere (tracing off) unless
 * OTEL_TRACES_EXPORTER names an exporter or an OTLP endpoint is set, and never with
 * OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none.
 */
export function traceExporters (config: TracingConfig): TraceExporter[] {
  const named = config.OTEL_TRACES_EXPORTER
  if (config.OTEL_SDK_DISABLED || named?.includes('none')) return []
  const endpoint = config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? config.OTEL_EXPORTER_OTLP_ENDPOINT
  const exporters = named ?? (endpoint === undefined ? [] : ['otlp'])
  const protocol = config.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? config.OTEL_EXPORTER_OTLP_PROTOCOL
  return [...new Set(exporters)].map((name) => {
    if (name === 'console') return 'console'
    return protocol === 'http/json' ? 'otlp-json' : 'otlp-protobuf'
  })
}

/** The SDK is imported here, and only when tracing is on. */
export async function startTracing (config: TracingConfig, log: Logger): Promise<Tracing | undefined> {
  const exporters = traceExporters(config)
  if (exporters.length === 0) return undefined
  const { createTracing } = await import('./otel.ts')
  return createTracing(exporters, log)
}
