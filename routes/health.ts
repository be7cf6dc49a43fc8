import type { FastifyPluginAsync } from 'fastify'

export interface HealthOptions {
  /** Why the service cannot accept changes right now, or null when it can. */
  notReadyReason: () => string | null
}

const health: FastifyPluginAsync<HealthOptions> = async (app, { notReadyReason }) => {
  app.get('/healthz', async () => ({ status: 'ok' }))

  app.get('/readyz', async (_request, reply) => {
    const reason = notReadyReason()
    if (reason === null) return { status: 'ready' }
    return reply.code(503).header('retry-after', '5').send({ status: 'not ready', reason })
  })
}

export default health
