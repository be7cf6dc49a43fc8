import { z } from 'zod'

/**
 * One Sequin change message, as its HTTP sink sends it (sequin-http-sink.md, b.1–b.6).
 * Unknown fields are kept (Sequin adds metadata over time); only what we rely on is checked.
 */

/**
 * A JSON object passed through as it is, not rebuilt: zod drops a `__proto__` key when it copies
 * an object, and a row's columns and a jsonb value's keys are the customer's data, whatever
 * their names (the JSON parser keeps such keys as own properties, never as a prototype).
 */
const jsonObject = z.custom<Record<string, unknown>>(
  (value) => value !== null && typeof value === 'object' && !Array.isArray(value),
  'expected an object')

/**
 * A commit position: a number, or the decimal text the exact parser gives for one beyond 2^53 (a
 * long-lived server's LSN). Kept as it arrived; compared exactly, as decimal text.
 */
const position = z.union([
  // A number written as 1e21 is not an LSN Sequin sends, and its digits are not known.
  z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  z.string().regex(/^\d{1,20}$/, 'expected a whole number'),
])

const annotated = z.looseObject({ annotations: jsonObject.nullish() })

const metadataSchema = z.looseObject({
  table_schema: z.string().min(1),
  table_name: z.string().min(1),
  commit_timestamp: z.iso.datetime({ offset: true, local: true }),
  // null on `read` (backfill) messages; missing on servers older than mid-2025.
  commit_lsn: position.nullish(),
  commit_idx: position.nullish(),
  idempotency_key: z.string().min(1).nullish(),
  record_pks: z.array(z.union([z.string(), z.number()]).transform(String)).nullish(),
  database_name: z.string().nullish(),
  transaction_annotations: z.unknown().optional(),
  enrichment: z.unknown().optional(),
  consumer: annotated.extend({ id: z.string(), name: z.string() }).nullish(),
  database: annotated.extend({
    id: z.string(),
    name: z.string(),
    database: z.string().nullish(),
    hostname: z.string().nullish(),
  }).nullish(),
})

export const actions = ['insert', 'update', 'delete', 'read'] as const
export type Action = (typeof actions)[number]

export const messageSchema = z.looseObject({
  action: z.enum(actions),
  record: jsonObject,
  changes: jsonObject.nullish().transform((changes) => changes ?? null),
  metadata: metadataSchema,
}).superRefine((message, ctx) => {
  const { idempotency_key: key, commit_lsn: lsn, commit_idx: idx } = message.metadata
  if (!key && (lsn == null || idx == null)) {
    ctx.addIssue({
      code: 'custom',
      path: ['metadata', 'idempotency_key'],
      message: 'a change needs metadata.idempotency_key, or commit_lsn and commit_idx to derive it',
    })
  }
})

export type SequinMessage = z.infer<typeof messageSchema>
export type SequinMetadata = SequinMessage['metadata']

export interface MessageIssue {
  path: string
  message: string
}

export type ParsedMessage =
  | { ok: true, message: SequinMessage }
  | { ok: false, issues: MessageIssue[] }

export function parseMessage (value: unknown): ParsedMessage {
  const result = messageSchema.safeParse(value)
  if (result.success) return { ok: true, message: result.data }
  const issues = result.error.issues.slice(0, 10).map((issue) => ({
    path: issue.path.map(String).join('.') || '(message)',
    message: issue.message,
  }))
  return { ok: false, issues }
}

export type Envelope =
  | { ok: true, batched: boolean, messages: unknown[] }
  | { ok: false, reason: string }
  | { ok: false, tooMany: { count: number, limit: number } }

/** Keys that are never data at the top of a body: JSON.parse keeps them, but they are not Sequin's. */
const POISON_KEYS = ['__proto__', 'constructor', 'prototype']

/**
 * Batched bodies are exactly `{"data": [...]}`. Any other JSON value is one bare message
 * (batching off, or via-SQS mode); with a Sequin transform that may be any JSON value, which then
 * fails the message schema and is quarantined rather than refused. A top-level array, or a
 * `data` wrapper that holds no messages, is neither shape.
 */
export function readEnvelope (body: unknown, maxMessages = Number.POSITIVE_INFINITY): Envelope {
  if (Array.isArray(body)) {
    return { ok: false, reason: 'body is a JSON array: wrap messages as {"data": [...]}' }
  }
  if (body !== null && typeof body === 'object') {
    const keys = Object.keys(body)
    // Only a body that claims to be a batch is judged as one: a bare message may be a row
    // (Sequin's record_only transform) whose columns are named anything.
    const poison = keys.includes('data') ? keys.find((key) => POISON_KEYS.includes(key)) : undefined
    if (poison !== undefined) return { ok: false, reason: `body has a "${poison}" key: not a Sequin body` }
    if (keys.length === 1 && keys[0] === 'data') {
      const data = (body as { data: unknown }).data
      if (!Array.isArray(data)) return { ok: false, reason: '"data" must be an array of messages' }
      if (data.length === 0) return { ok: false, reason: '"data" holds no messages' }
      if (data.length > maxMessages) return { ok: false, tooMany: { count: data.length, limit: maxMessages } }
      return { ok: true, batched: true, messages: data }
    }
  }
  return { ok: true, batched: false, messages: [body] }
}
