import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import metricsRoute from '../../routes/metrics.ts'
import type { Config } from '../config.ts'
import type { Metrics } from '../metrics.ts'

/** A worker-only process has no webhook: this serves its /metrics and /healthz for scraping. */
export async function startWorkerHttp (config: Config, metrics: Metrics, logger: Logger, port: number): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: logger as FastifyBaseLogger, disableRequestLogging: true })
  app.get('/healthz', async () => ({ status: 'ok' }))
  await app.register(metricsRoute, { metrics, token: config.METRICS_TOKEN })
  await app.listen({ host: config.HOST, port })
  return app
}
