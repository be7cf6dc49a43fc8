import { hostname, userInfo } from 'node:os'
import type { Keyspace } from '../keys.ts'
import type { Metrics } from '../metrics.ts'
import type { RedisClient } from '../redis/connection.ts'

/** What an operator can do to work in Redis; the label of changeflow_operator_actions_total. */
export const OPERATOR_ACTIONS = ['retry', 'discard', 'discard-workflow', 'redrive', 'quarantine-drop', 'layout-reset'] as const
export type OperatorAction = (typeof OPERATOR_ACTIONS)[number]

/** Entries the operators' log keeps (older ones are trimmed). */
export const OPERATOR_LOG_LENGTH = 10_000

function operator (): string {
  try {
    return `${userInfo().username}@${hostname()}`
  } catch {
    return `unknown@${hostname()}`
  }
}

/**
 * Records one operator action in the home shard: counted (a CLI process has no /metrics of its
 * own, so the count lives in Redis, where every web process's /metrics reads it) and logged in
 * a bounded stream with its target and who did it (`XREVRANGE <prefix>:_cf:ops-log + - COUNT 20`).
 */
export async function recordAction (redis: RedisClient, home: Keyspace, action: OperatorAction, target: Record<string, string>): Promise<void> {
  await redis.hincrby(home.operatorActions(), action, 1)
  const fields = Object.entries({ action, ...target, by: operator(), at: new Date().toISOString() }).flat()
  await redis.xadd(home.operatorLog(), 'MAXLEN', '~', OPERATOR_LOG_LENGTH, '*', ...fields)
}

/** changeflow_operator_actions_total, read from Redis at scrape time: the actions of every operator's CLI. */
export function registerOperatorActions (metrics: Metrics, redis: RedisClient, home: Keyspace): void {
  metrics.counterFromRedis('changeflow_operator_actions_total',
    'Operator actions taken with the changeflow CLI (retry, discard, discard-workflow, redrive, quarantine-drop, layout-reset), by action.',
    ['action'], async (set) => {
      const counts = await redis.hgetall(home.operatorActions())
      for (const action of OPERATOR_ACTIONS) set({ action }, Number(counts[action] ?? 0))
    })
}
