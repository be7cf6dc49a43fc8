import { pipeline } from 'node:stream'
import { createGunzip, type Gunzip } from 'node:zlib'
import type { FastifyPluginAsync } from 'fastify'
import { Errors, withDetails } from '../src/errors.ts'
import { createTokenCheck } from '../src/http/auth.ts'
import type { DryRunOutcome } from '../src/ingest/dry-run.ts'
import type { Ingest, IngestOutcome, Refusal } from '../src/ingest/ingest.ts'

export interface WebhookOptions {
  tokens: readonly string[]
  ingest: Ingest
  /** What ingest would do with a body, writing nothing: `POST /webhooks/sequin/dry-run`. */
  dryRun: (text: string) => Promise<DryRunOutcome>
  /** While false (Redis down or misconfigured, shutting down) the webhook answers 503. */
  isReady: () => boolean
}

/** Gunzips in a stream; Fastify's body limit then applies to the decoded bytes (zip bombs). */
function gunzip (payload: NodeJS.ReadableStream): Gunzip {
  const decoded = createGunzip() as Gunzip & { receivedEncodedLength: number }
  decoded.receivedEncodedLength = 0
  payload.on('data', (chunk: Buffer) => { decoded.receivedEncodedLength += chunk.length })
  pipeline(payload, decoded, () => {})
  return decoded
}

/**
 * Sequin's HTTP sink posts here: `POST /webhooks/sequin`. Every refusal is a catalogued error;
 * the app's root handler (src/http/error-contract.ts) gives it its status, body and Retry-After.
 */
const webhook: FastifyPluginAsync<WebhookOptions> = async (app, { tokens, ingest, dryRun, isReady }) => {
  const authorized = createTokenCheck(tokens)

  // Only JSON is a Sequin body; Fastify's text/plain parser would let any text through. The JSON
  // text goes to ingest unparsed: it parses exactly (integers beyond 2^53 kept) and treats
  // `__proto__` inside a row as the data it is, where Fastify's parser answers 400.
  app.removeContentTypeParser(['text/plain', 'application/json'])
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => done(null, body))

  // Before the body is read: an unauthenticated client never gets to make us buffer or parse.
  app.addHook('onRequest', async (request) => {
    if (!authorized(request.headers.authorization)) throw new Errors.Unauthorized('webhook')
    if (!isReady()) throw new Errors.Unavailable('not ready')
  })

  app.addHook('preParsing', async (request, _reply, payload) => {
    const encoding = (request.headers['content-encoding'] ?? 'identity').trim().toLowerCase()
    if (encoding === 'identity' || encoding === '') return payload
    if (encoding === 'gzip' || encoding === 'x-gzip') return gunzip(payload)
    throw new Errors.UnsupportedEncoding(encoding)
  })

  app.post('/sequin', async (request, reply) => {
    const outcome: IngestOutcome = await ingest(request.body as string, request.log)
    switch (outcome.kind) {
      case 'accepted':
        request.log.info(outcome.counts, 'batch accepted')
        return reply.code(200).send(outcome.counts)
      case 'bad-json':
      case 'bad-envelope':
      case 'too-many-messages':
        throw refusal(outcome)
      case 'rejected':
        throw withDetails(new Errors.InvalidMessages(), { messages: outcome.errors })
      case 'quarantine-full':
        throw withDetails(new Errors.QuarantineFull(outcome.held, outcome.limit), { messages: outcome.errors })
      case 'unavailable':
        throw new Errors.Unavailable(outcome.reason)
      default: {
        const unreachable: never = outcome
        throw new Error(`unhandled outcome ${JSON.stringify(unreachable)}`)
      }
    }
  })

  // The same token, body handling and error contract as the webhook; nothing is written.
  app.post('/sequin/dry-run', async (request, reply) => {
    const outcome = await dryRun(request.body as string)
    switch (outcome.kind) {
      case 'planned':
        return reply.code(200).send(outcome.result)
      case 'bad-json':
      case 'bad-envelope':
      case 'too-many-messages':
        throw refusal(outcome)
      case 'unavailable':
        throw new Errors.Unavailable(outcome.reason)
      default: {
        const unreachable: never = outcome
        throw new Error(`unhandled outcome ${JSON.stringify(unreachable)}`)
      }
    }
  })
}

/** A body refused before anything was planned: the same error from both routes. */
function refusal (outcome: Refusal): Error {
  switch (outcome.kind) {
    case 'bad-json':
      return new Errors.BadJson(outcome.reason)
    case 'bad-envelope':
      return new Errors.BadEnvelope(outcome.reason)
    case 'too-many-messages':
      return new Errors.TooManyMessages(outcome.count, outcome.limit)
    default: {
      const unreachable: never = outcome
      return new Error(`unhandled refusal ${JSON.stringify(unreachable)}`)
    }
  }
}

export default webhook
