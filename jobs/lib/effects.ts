import type { Logger } from 'pino'

/**
 * Every side effect the shipped workflows have goes through this adapter. The default only logs;
 * replace it (setEffects) with real providers. Each call carries the step's idempotency key:
 * pass it on (Stripe's Idempotency-Key, your email provider's dedup id, a unique constraint) so
 * the effect happens once even when a step runs again after a crash or retry.
 */
export interface Effects {
  reserveInventory (input: { orderId: string, idempotencyKey: string }, log: Logger): Promise<{ reservationId: string }>
  createShipment (input: { orderId: string, reservationId: string, idempotencyKey: string }, log: Logger): Promise<{ shipmentId: string }>
  sendEmail (input: { to: string, template: string, data: Record<string, unknown>, idempotencyKey: string }, log: Logger): Promise<{ messageId: string }>
}

// Row values stay out of these lines: the step's logger already names the row (its primary key,
// or the key's hash under LOG_ROW_KEYS=hash), and an order's id is its primary key.
export const loggingEffects: Effects = {
  async reserveInventory ({ orderId, idempotencyKey }, log) {
    log.info({ idempotencyKey }, 'effect: reserve inventory')
    return { reservationId: `res-${orderId}` }
  },
  async createShipment ({ orderId, idempotencyKey }, log) {
    log.info({ idempotencyKey }, 'effect: create shipment')
    return { shipmentId: `shp-${orderId}` }
  },
  async sendEmail ({ template, idempotencyKey }, log) {
    // The address is personal data: it stays out of info logs.
    log.info({ template, idempotencyKey }, 'effect: send email')
    return { messageId: `msg-${idempotencyKey}` }
  },
}

let current: Effects = loggingEffects

export function effects (): Effects {
  return current
}

export function setEffects (next: Effects): void {
  current = next
}
