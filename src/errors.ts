import createError from '@fastify/error'

/** Every error changeflow answers with: stable codes, one prefix, no internals. */
export const Errors = {
  Unauthorized: createError('CF_UNAUTHORIZED', 'missing or invalid webhook token', 401),
  UnsupportedEncoding: createError('CF_UNSUPPORTED_ENCODING', 'content-encoding "%s" is not supported: send identity or gzip', 415),
  BadEnvelope: createError('CF_BAD_ENVELOPE', '%s', 400),
  InvalidMessages: createError('CF_INVALID_MESSAGES', 'messages failed validation; nothing was enqueued', 422),
  Unavailable: createError('CF_UNAVAILABLE', 'temporarily unavailable (%s): retry later', 503),
}
