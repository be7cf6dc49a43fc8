import { createBullBoard } from '@bull-board/api'
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter'
import { FastifyAdapter } from '@bull-board/fastify'
import type { Queue } from 'bullmq'
import type { FastifyPluginAsync } from 'fastify'
import { Errors } from '../src/errors.ts'
import { createBasicCheck } from '../src/http/basic-auth.ts'
import { handleNotFound } from '../src/http/error-contract.ts'
import { QUARANTINE_QUEUE } from '../src/keys.ts'

export interface BoardOptions {
  /** Every workflow queue and the quarantine queue, under the service's BullMQ prefix. */
  queues: Queue[]
  username: string
  password: string
  /** Operators may look but not retry, remove, clean, pause, add or edit. */
  readOnly: boolean
  /** Where the board is served; default `/admin/queues`. Pass this, not Fastify's `prefix`. */
  basePath?: string
  /**
   * Queues found later holding work of workflows this release does not define (renamed or
   * removed): called once with a function that adds each to the board, marked as such.
   */
  onForeignQueue?: (add: (queue: Queue) => void) => void
  /**
   * With several shards a workflow has a queue in each: its shard number, so that the board
   * names them `<workflow>.s<shard>` and groups them under the workflow. Undefined: one shard.
   */
  shardOf?: (queue: Queue) => number | undefined
}

/** A queue of one shard: named after its shard too, as board names must be unique. */
class ShardQueueAdapter extends BullMQAdapter {
  readonly #suffix: string
  constructor (queue: Queue, options: ConstructorParameters<typeof BullMQAdapter>[1], shard: number) {
    super(queue, { ...options, delimiter: '.' })
    this.#suffix = `.s${shard}`
  }

  override getName (): string {
    return `${super.getName()}${this.#suffix}`
  }
}

export const BOARD_BASE_PATH = '/admin/queues'

const REALM = 'Basic realm="changeflow", charset="UTF-8"'
const SAFE_METHODS = new Set(['GET', 'HEAD'])

function withoutUpgrade (csp: string): string {
  return csp.split(';').map((directive) => directive.trim())
    .filter((directive) => directive !== '' && directive.toLowerCase() !== 'upgrade-insecure-requests').join(';')
}

function describe (queue: Queue): { displayName: string, description: string } {
  if (queue.name === QUARANTINE_QUEUE) {
    return {
      displayName: 'quarantine (invalid messages)',
      description: 'Sequin messages that failed validation or routing. Read the error, fix the cause, then retry to re-drive the message.',
    }
  }
  return { displayName: queue.name, description: `Steps of the ${queue.name} workflow, one job per step.` }
}

function describeForeign (queue: Queue): { displayName: string, description: string } {
  return {
    displayName: `${queue.name} (not defined here)`,
    description: `No workflow named ${queue.name} in this release, yet its queue holds work: runs accepted before a ` +
      'rename or removal. Unless another release\'s worker still runs it, its rows are blocked: drain it with such a ' +
      `worker, or give its runs up (npx changeflow discard-workflow ${queue.name}).`,
  }
}

/**
 * Bull Board, behind HTTP basic auth. Not wrapped in fastify-plugin on purpose: the hooks below
 * live in this plugin's scope, so they cover every board URL (page, static files, API, unknown
 * paths under the base path) and nothing else in the app, such as the webhook.
 */
const board: FastifyPluginAsync<BoardOptions> = async (app, options) => {
  const basePath = options.basePath ?? BOARD_BASE_PATH
  const authorized = createBasicCheck(options.username, options.password)
  const staticPath = `${basePath}/static/`

  const serverAdapter = new FastifyAdapter()
  serverAdapter.setBasePath(basePath)
  const adapter = (queue: Queue, described: { displayName: string, description: string }) => {
    const shard = options.shardOf?.(queue)
    const adapterOptions = { readOnlyMode: options.readOnly, ...described }
    return shard === undefined ? new BullMQAdapter(queue, adapterOptions) : new ShardQueueAdapter(queue, adapterOptions, shard)
  }
  const bullBoard = createBullBoard({
    queues: options.queues.map((queue) => adapter(queue, describe(queue))),
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: 'changeflow',
        ...(options.readOnly ? { environment: { label: 'read-only', color: '#6b7280' } } : {}),
      },
    },
  })
  // Bull Board's routes have their own error handler, which answers every error thrown on them
  // (our 401 and 403 from the hooks below included) with its own body, the stack too in
  // development. Thrown on instead, they reach the app's root handler: one shape, no internals in
  // a 5xx. Its API's expected answers, such as an unknown queue, keep its shape: its UI reads them.
  serverAdapter.setErrorHandler((error) => { throw error })
  options.onForeignQueue?.((queue) => {
    bullBoard.addQueue(adapter(queue, describeForeign(queue)))
  })

  // onRequest: before the body is read, so an unauthenticated client cannot make us parse it.
  app.addHook('onRequest', async (request, reply) => {
    if (!authorized(request.headers.authorization)) {
      reply.header('www-authenticate', REALM)
      throw new Errors.BoardUnauthorized()
    }
    // Bull Board's read-only mode hides the buttons and refuses most actions; this refuses them
    // all, including actions a later Bull Board version adds.
    if (options.readOnly && !SAFE_METHODS.has(request.method)) throw new Errors.BoardReadOnly()
  })

  app.addHook('onSend', async (request, reply) => {
    // Job data is business data: keep it out of shared caches and the browser's disk cache.
    if (!request.url.startsWith(staticPath)) reply.header('cache-control', 'no-store')
    // helmet's app-wide `upgrade-insecure-requests` makes the browser fetch the board's own
    // scripts over https, so on a plain-http address the page stays blank. Dropped here only:
    // under https it changes nothing, every board URL being same-origin.
    const csp = reply.getHeader('content-security-policy')
    if (typeof csp === 'string') reply.header('content-security-policy', withoutUpgrade(csp))
  })

  await app.register(async (scope) => {
    // Unknown URLs under the base path get the hooks above too: 401 before anything else.
    scope.setNotFoundHandler(handleNotFound)
    await scope.register(serverAdapter.registerPlugin())
  }, { prefix: basePath })
}

export default board
