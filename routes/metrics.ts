import type { FastifyPluginAsync } from 'fastify'
import { Errors } from '../src/errors.ts'
import { createTokenCheck } from '../src/http/auth.ts'
import type { Metrics } from '../src/metrics.ts'

export interface MetricsOptions {
  metrics: Metrics
  /** When set, scrapes must send `Authorization: Bearer <token>`. */
  token?: string
}

/** `GET /metrics` in Prometheus's text format. */
const metricsRoute: FastifyPluginAsync<MetricsOptions> = async (app, { metrics, token }) => {
  const authorized = token ? createTokenCheck([token]) : () => true
  app.get('/metrics', async (request, reply) => {
    if (!authorized(request.headers.authorization)) throw new Errors.Unauthorized('metrics')
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
}

export default metricsRoute
