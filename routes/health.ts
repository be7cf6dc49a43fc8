import type { FastifyPluginAsync } from 'fastify'
import { Errors, withDetails } from '../src/errors.ts'

export interface HealthOptions {
  /** Why the service cannot accept changes right now, or null when it can. */
  notReadyReason: () => string | null
  /** What an operator should know while the service is ready (it still accepts valid batches). */
  warnings?: () => string[]
}

const health: FastifyPluginAsync<HealthOptions> = async (app, { notReadyReason, warnings = () => [] }) => {
  app.get('/healthz', async () => ({ status: 'ok' }))

  app.get('/readyz', async () => {
    const reason = notReadyReason()
    if (reason === null) {
      const current = warnings()
      return current.length === 0 ? { status: 'ready' } : { status: 'ready', warnings: current }
    }
    // `status` and `reason` as before this body took the common error shape: probes read them.
    throw withDetails(new Errors.Unavailable(reason), { status: 'not ready', reason })
  })
}

export default health
