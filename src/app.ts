import helmet from '@fastify/helmet'
import underPressure from '@fastify/under-pressure'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import board, { type BoardOptions } from '../routes/board.ts'
import health from '../routes/health.ts'
import metricsRoute from '../routes/metrics.ts'
import webhook, { type WebhookOptions } from '../routes/webhook.ts'
import type { Config } from './config.ts'
import { errorContractOptions, useErrorContract } from './http/error-contract.ts'
import type { Ingest } from './ingest/ingest.ts'
import type { Metrics } from './metrics.ts'
import type { Tracing } from './tracing/tracing.ts'

export interface AppDeps {
  logger: Logger
  metrics: Metrics
  ingest: Ingest
  /** `POST /webhooks/sequin/dry-run`: what ingest would do, writing nothing. */
  dryRun: WebhookOptions['dryRun']
  tokens: readonly string[]
  /** Why the service cannot accept changes right now, or null when it can. */
  notReadyReason: () => string | null
  /** What /readyz reports while ready: conditions an operator should act on. */
  warnings?: () => string[]
  /** True once shutdown began. */
  isClosing: () => boolean
  /** The dashboard, behind its own credentials; absent when it is off. */
  board?: BoardOptions
  /** Present when tracing is on: the webhook's requests get spans (probes and the dashboard do not). */
  tracing?: Pick<Tracing, 'requests'>
}

/** The HTTP side, ready to `inject` or `listen`. It never touches `process`. */
export async function buildApp (config: Config, deps: AppDeps): Promise<FastifyInstance> {
  if (deps.tokens.length === 0) throw new Error('no webhook token: the endpoint is never open without one')

  const logger = deps.logger as FastifyBaseLogger
  const app = Fastify({
    ...errorContractOptions(logger),
    loggerInstance: logger,
    bodyLimit: config.BODY_LIMIT,
    requestIdHeader: 'x-request-id',
    // Sequin waits 30 s by default; answer (503, so it retries) well before it gives up.
    connectionTimeout: 60_000,
  })

  // One body shape for every status >= 400, 404s and Fastify's own errors included.
  useErrorContract(app)
  await app.register(helmet)
  // Shed load before it hurts: past the limits every route answers 503 with Retry-After, which
  // Sequin retries, instead of timing out.
  await app.register(underPressure, {
    maxEventLoopDelay: config.MAX_EVENT_LOOP_DELAY,
    maxHeapUsedBytes: config.MAX_HEAP_USED,
    retryAfter: 5,
  })
  // Sequin keeps connections alive: once shutdown began, each response closes its connection,
  // or an idle keep-alive socket would hold the server open until the grace period runs out.
  app.addHook('onSend', async (_request, reply) => {
    if (deps.isClosing()) reply.header('connection', 'close')
  })
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched'
    deps.metrics.httpRequests.inc({ route, method: request.method, status: String(reply.statusCode) })
    deps.metrics.httpDuration.observe({ route, method: request.method }, reply.elapsedTime / 1000)
  })
  await app.register(health, { notReadyReason: deps.notReadyReason, warnings: deps.warnings })
  // With METRICS_PORT, /metrics is served on that port only (src/runtime/metrics-http.ts).
  if (config.METRICS_PORT === undefined) {
    await app.register(metricsRoute, { metrics: deps.metrics, token: config.METRICS_TOKEN })
  }
  if (deps.board) await app.register(board, deps.board)
  await app.register(async (webhooks) => {
    // Around the webhook's own hooks, so that refused requests (401, 503) have their span too.
    deps.tracing?.requests(webhooks)
    await webhooks.register(webhook, {
      tokens: deps.tokens,
      ingest: deps.ingest,
      dryRun: deps.dryRun,
      isReady: () => deps.notReadyReason() === null,
    })
  }, { prefix: '/webhooks' })
  return app
}
