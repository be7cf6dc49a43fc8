import {
  context, defaultTextMapGetter, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type TextMapSetter, type Tracer,
} from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import {
  ATTR_ERROR_TYPE, ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_HTTP_ROUTE, ATTR_URL_PATH,
} from '@opentelemetry/semantic-conventions'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { BatchPlan } from '../ingest/plan.ts'
import { failsForGood } from '../worker/outcome.ts'
import type { Tracing } from './tracing.ts'

// Job data always carries W3C trace context, whatever OTEL_PROPAGATORS says for HTTP: a step
// may run under another release, or days later, and must still read it.
const w3c = new W3CTraceContextPropagator()
const setter: TextMapSetter<Record<string, string>> = { set: (carrier, key, value) => { carrier[key] = value } }

/**
 * Attributes name the workflow, the step and hashed identities (change and run ids are digests
 * of Sequin's idempotency key), never a row's columns or primary-key values. Error messages are
 * left out for the same reason: a step's error, or a JSON parser's, may quote the row.
 */
export function spanMakers (tracer: Tracer): Omit<Tracing, 'shutdown'> {
  return { requests: requestSpans(tracer), changes: changeSpans(tracer), steps: stepSpans(tracer) }
}

function requestSpans (tracer: Tracer): Tracing['requests'] {
  const active = new WeakMap<FastifyRequest, Context>()
  const end = (request: FastifyRequest, status?: number) => {
    const span = trace.getSpan(active.get(request) ?? ROOT_CONTEXT)
    active.delete(request)
    if (!span) return
    if (status !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status)
    if (status === undefined || status >= 500) span.setStatus({ code: SpanStatusCode.ERROR })
    if (status !== undefined && status >= 500) span.setAttribute(ATTR_ERROR_TYPE, String(status))
    span.end()
  }
  return (app: FastifyInstance) => {
    // Callback hooks, so that the rest of the request runs inside the span's context (ingest
    // links each change to it): entered when the request begins, and again before the handler,
    // which is called back from the body's stream.
    app.addHook('onRequest', (request, _reply, done) => {
      const route = request.routeOptions.url ?? request.url.split('?')[0]!
      const parent = w3c.extract(ROOT_CONTEXT, request.headers, defaultTextMapGetter)
      const span = tracer.startSpan(`${request.method} ${route}`, {
        kind: SpanKind.SERVER,
        attributes: {
          [ATTR_HTTP_REQUEST_METHOD]: request.method,
          [ATTR_HTTP_ROUTE]: route,
          [ATTR_URL_PATH]: request.url.split('?')[0],
        },
      }, parent)
      const ctx = trace.setSpan(parent, span)
      active.set(request, ctx)
      context.with(ctx, done)
    })
    app.addHook('preHandler', (request, _reply, done) => context.with(active.get(request) ?? context.active(), done))
    app.addHook('onResponse', (request, reply, done) => { end(request, reply.statusCode); done() })
    app.addHook('onRequestAbort', (request, done) => { end(request); done() })
  }
}

function changeSpans (tracer: Tracer): Tracing['changes'] {
  return (plan: BatchPlan) => {
    const request = trace.getActiveSpan()?.spanContext()
    const links = request ? [{ context: request }] : []
    for (const change of plan.changes) {
      // A trace of its own, not the request's: a batch carries up to a thousand changes, and
      // each change's runs go their own way for as long as they take.
      const span = tracer.startSpan('change', {
        root: true,
        kind: SpanKind.PRODUCER,
        links,
        attributes: {
          'changeflow.change_id': change.changeId,
          'changeflow.table': change.table,
          'changeflow.action': change.action,
          'changeflow.workflows': change.jobs.map((job) => job.queue),
          'messaging.system': 'bullmq',
          'messaging.operation.type': 'create',
        },
      })
      const carrier: Record<string, string> = {}
      w3c.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, setter)
      span.end()
      // First in the job's JSON object: `{"trace":"00-…",` then the data as planned.
      if (carrier.traceparent) for (const job of change.jobs) job.data = `{"trace":"${carrier.traceparent}",${job.data.slice(1)}`
    }
  }
}

function stepSpans (tracer: Tracer): Tracing['steps'] {
  return (processor) => async function tracedStep (job, token) {
    const data = job.data
    const parent = data.trace ? w3c.extract(ROOT_CONTEXT, { traceparent: data.trace }, defaultTextMapGetter) : ROOT_CONTEXT
    const attempt = job.attemptsMade + 1
    const span = tracer.startSpan(`step ${data.workflow} ${data.step}`, {
      kind: SpanKind.CONSUMER,
      attributes: {
        'changeflow.workflow': data.workflow,
        'changeflow.step': data.step,
        'changeflow.attempt': attempt,
        'changeflow.commit_lag_ms': Math.max(0, Date.now() - Date.parse(data.commitTimestamp)),
        'changeflow.change_id': data.changeId,
        'changeflow.run': data.run,
        'messaging.system': 'bullmq',
        'messaging.operation.type': 'process',
        'messaging.destination.name': data.workflow,
        'messaging.message.id': String(job.id),
      },
    }, parent)
    try {
      const result = await context.with(trace.setSpan(parent, span), () => processor(job, token))
      span.setAttribute('changeflow.outcome', 'completed')
      return result
    } catch (error) {
      const final = failsForGood(attempt, job.opts.attempts ?? 1, error)
      const type = (error as Error | undefined)?.name ?? 'Error'
      span.setAttributes({ 'changeflow.outcome': final ? 'failed' : 'retried', [ATTR_ERROR_TYPE]: type })
      span.setStatus({ code: SpanStatusCode.ERROR })
      throw error
    } finally {
      span.end()
    }
  }
}
