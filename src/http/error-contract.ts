import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type {
  FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions,
} from 'fastify'
import { detailsOf, Errors, isCatalogError, type CatalogError } from '../errors.ts'

/** Sequin (and any client) retries a 503 after this many seconds. */
export const RETRY_AFTER_SECONDS = '5'

/** What every response with a status of 400 or more carries, plus `messages` or `reason` where told. */
export interface ErrorBody {
  statusCode: number
  code: string
  /** The HTTP reason phrase. */
  error: string
  /** What went wrong, for a person. */
  message: string
  [detail: string]: unknown
}

export function errorBody (error: CatalogError): ErrorBody {
  const status = error.statusCode
  const phrase = STATUS_CODES[status] ?? 'Error'
  return { ...detailsOf(error), statusCode: status, code: error.code, error: phrase, message: error.message }
}

const GZIP_ERRORS = new Set(['Z_DATA_ERROR', 'Z_BUF_ERROR', 'Z_NEED_DICT', 'Z_STREAM_ERROR'])

/** The path of the request without its query string (which may hold anything), cut to a sane length. */
function pathOf (request: FastifyRequest): string {
  const path = request.url.split('?')[0] ?? ''
  return path.length > 200 ? `${path.slice(0, 200)}…` : path
}

/**
 * Fastify's, its plugins' and Node's errors as the catalogue entry a client sees; null for
 * anything else, which is a bug of ours and answered as CF_INTERNAL.
 */
function translate (error: FastifyError, request: FastifyRequest): CatalogError | null {
  if (isCatalogError(error)) return error
  const code = error.code ?? ''
  if (GZIP_ERRORS.has(code)) return new Errors.BadGzip()
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return new Errors.BodyTooLarge(request.routeOptions.bodyLimit)
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return new Errors.UnsupportedMediaType()
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY': return new Errors.BadJson('the body is not JSON')
    case 'FST_ERR_MAX_PARAM_LENGTH': return new Errors.UrlTooLong()
    case 'FST_UNDER_PRESSURE': return new Errors.Unavailable('overloaded')
  }
  const status = error.statusCode ?? 0
  if (status === 404) return new Errors.NotFound(request.method, pathOf(request))
  // Any other client error (a bad URL, a body shorter than its content-length, a plugin's 403 or
  // 416): Fastify phrased it for the client; keep its status under our generic code.
  if (status >= 400 && status < 500) return Object.assign(new Errors.BadRequest(error.message), { statusCode: status })
  return null
}

/**
 * The root error handler: every error of every route, hook and plugin ends here. 5xx never echo
 * internals: an unexpected error is logged with its stack and answered with CF_INTERNAL; only our
 * own CF_UNAVAILABLE keeps its message (Redis down, not ready, shutting down, overloaded).
 */
export function handleError (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const known = translate(error, request)
  const expected = known !== null && (known.statusCode < 500 || known instanceof Errors.Unavailable)
  const answer = expected ? known : new Errors.Internal(request.id)
  if (!expected) request.log.error({ err: error }, 'request failed')
  else if (answer.statusCode >= 500) request.log.warn({ code: answer.code, reason: answer.message }, 'answered 503')
  if (answer.statusCode === 503 && !reply.hasHeader('retry-after')) reply.header('retry-after', RETRY_AFTER_SECONDS)
  reply.code(answer.statusCode).send(errorBody(answer))
}

/** Any URL no route serves. Scopes with their own hooks (the dashboard) register it too. */
export function handleNotFound (request: FastifyRequest, reply: FastifyReply): void {
  handleError(new Errors.NotFound(request.method, pathOf(request)), request, reply)
}

/**
 * Requests Node's HTTP parser refuses before Fastify sees them (not HTTP, headers too large,
 * too slow): a raw response on the socket, in the same shape.
 */
function clientErrorHandler (logger: FastifyBaseLogger) {
  return (error: Error & { code?: string }, socket: Socket): void => {
    if (error.code === 'ECONNRESET' || socket.destroyed) return
    const answer = error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? new Errors.RequestTimeout()
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? new Errors.HeadersTooLarge()
        : new Errors.BadRequest('the request is not valid HTTP')
    logger.debug({ err: error }, 'client error')
    if (socket.writable) {
      const body = JSON.stringify(errorBody(answer))
      socket.write(`HTTP/1.1 ${answer.statusCode} ${STATUS_CODES[answer.statusCode]}\r\nconnection: close\r\n` +
        `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
    }
    socket.destroy(error)
  }
}

/** Server options the contract needs: errors raised before routing, and no raw 503 on close. */
type ContractOptions = Pick<FastifyServerOptions, 'frameworkErrors' | 'clientErrorHandler' | 'return503OnClosing'>

export function errorContractOptions (logger: FastifyBaseLogger): ContractOptions {
  return {
    frameworkErrors: handleError,
    clientErrorHandler: clientErrorHandler(logger),
    // Fastify's own 503 after close() is a fixed body without our code: answer it ourselves below.
    return503OnClosing: false,
  }
}

/** The root handlers. Call on the root instance, before any route is registered. */
export function useErrorContract (app: FastifyInstance): void {
  let closing = false
  app.addHook('preClose', async () => { closing = true })
  app.addHook('onRequest', async () => {
    if (closing) throw new Errors.Unavailable('shutting down')
  })
  app.setErrorHandler(handleError)
  app.setNotFoundHandler(handleNotFound)
}
