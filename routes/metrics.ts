import type { FastifyPluginAsync } from 'fastify'
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
    if (!authorized(request.headers.authorization)) {
      return reply.code(401).send({ statusCode: 401, code: 'CF_UNAUTHORIZED', error: 'missing or invalid metrics token' })
    }
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
}

export default metricsRoute
