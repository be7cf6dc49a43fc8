import createError from '@fastify/error'

/**
 * Every error changeflow answers with, and the only codes a client ever sees: stable, one prefix.
 * src/http/error-contract.ts turns each into `{ statusCode, code, error, message }` and translates
 * Fastify's and Node's own errors into one of these first. Codes are never renamed: Sequin's
 * operators and alerting read them.
 */
export const Errors = {
  BadRequest: createError('CF_BAD_REQUEST', '%s', 400),
  BadJson: createError('CF_BAD_JSON', '%s', 400),
  BadEnvelope: createError('CF_BAD_ENVELOPE', '%s', 400),
  BadGzip: createError('CF_BAD_GZIP', 'the body is not valid gzip', 400),
  Unauthorized: createError('CF_UNAUTHORIZED', 'missing or invalid %s token', 401),
  BoardUnauthorized: createError('CF_BOARD_UNAUTHORIZED', 'dashboard credentials required', 401),
  BoardReadOnly: createError('CF_BOARD_READ_ONLY', 'the dashboard is read-only', 403),
  NotFound: createError('CF_NOT_FOUND', 'no route for %s %s', 404),
  RequestTimeout: createError('CF_REQUEST_TIMEOUT', 'the request did not arrive in time', 408),
  BodyTooLarge: createError('CF_BODY_TOO_LARGE', 'the body is larger than %s bytes (BODY_LIMIT, measured after gzip decoding)', 413),
  TooManyMessages: createError('CF_TOO_MANY_MESSAGES', '%s messages in one request; at most %s (MAX_BATCH_MESSAGES)', 413),
  UrlTooLong: createError('CF_URL_TOO_LONG', 'a part of the URL is too long', 414),
  UnsupportedMediaType: createError('CF_UNSUPPORTED_MEDIA_TYPE', 'this content-type is not accepted here: send application/json', 415),
  UnsupportedEncoding: createError('CF_UNSUPPORTED_ENCODING', 'content-encoding "%s" is not supported: send identity or gzip', 415),
  InvalidMessages: createError('CF_INVALID_MESSAGES', 'messages failed validation; nothing was enqueued', 422),
  QuarantineFull: createError('CF_QUARANTINE_FULL',
    'the quarantine holds %s messages (QUARANTINE_LIMIT %s) and cannot take this batch\'s invalid messages; nothing was enqueued. ' +
    'Redrive quarantined messages (npx changeflow redrive) or remove them in the dashboard, and Sequin\'s next retry goes through',
    422),
  HeadersTooLarge: createError('CF_HEADERS_TOO_LARGE', 'the request headers are too large', 431),
  Internal: createError('CF_INTERNAL', 'internal error: see the log for request %s', 500),
  /** Expected and ours to explain: Redis down or slow, not ready, shutting down, overloaded. */
  Unavailable: createError('CF_UNAVAILABLE', 'temporarily unavailable (%s): retry later', 503),
} as const

/** An error of the catalogue: its code, status and message are fit for a client. */
export type CatalogError = InstanceType<(typeof Errors)[keyof typeof Errors]> & { code: string, statusCode: number }

const catalog = Object.values(Errors)

export function isCatalogError (error: unknown): error is CatalogError {
  return catalog.some((Constructor) => error instanceof Constructor)
}

const DETAILS = Symbol('changeflow error details')

/** Fields a response carries besides the four: `messages` of a 422, `reason` of a 503. */
export function withDetails<E extends CatalogError> (error: E, details: Record<string, unknown>): E {
  return Object.assign(error, { [DETAILS]: details })
}

export function detailsOf (error: CatalogError): Record<string, unknown> {
  return (error as { [DETAILS]?: Record<string, unknown> })[DETAILS] ?? {}
}
