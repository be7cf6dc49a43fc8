import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import metricsRoute from '../../routes/metrics.ts'
import type { Config } from '../config.ts'
import { errorContractOptions, useErrorContract } from '../http/error-contract.ts'
import type { Metrics } from '../metrics.ts'

/**
 * `/metrics` and `/healthz` on METRICS_PORT, apart from the webhook: for any role, so that
 * Prometheus scrapes a private port and the webhook's port never serves metrics. A worker-only
 * process has no other listener. Not `/readyz`: readiness is the webhook's, on its own port.
 */
export async function startMetricsHttp (
  config: Pick<Config, 'HOST' | 'METRICS_TOKEN'>, metrics: Metrics, logger: Logger, port: number
): Promise<FastifyInstance> {
  const log = logger as FastifyBaseLogger
  const app = Fastify({ ...errorContractOptions(log), loggerInstance: log, disableRequestLogging: true })
  useErrorContract(app)
  app.get('/healthz', async () => ({ status: 'ok' }))
  await app.register(metricsRoute, { metrics, token: config.METRICS_TOKEN })
  await app.listen({ host: config.HOST, port })
  return app
}
