import { Layout } from '../keys.ts'
import type { RedisClient } from './connection.ts'

/** The keyspace in Redis was laid out with another shard count than this process's REDIS_SHARDS. */
export class LayoutError extends Error {
  override name = 'LayoutError'
}

interface Recorded { shards: number, tags: string[] }

/**
 * Records the keyspace's shard count (and the shards' hash tags) on first start, and refuses to
 * run with another: a change's keys live in the shard its row's identity picks among N, so a
 * different N would put a row's new runs where its earlier ones are not.
 */
export async function recordLayout (redis: RedisClient, layout: Layout): Promise<void> {
  const tags = layout.shards.map((keys) => keys.bullPrefix.slice(1, -1))
  const mine: Recorded = { shards: tags.length, tags }
  if (mine.shards > 1 && await redis.get(layout.recordKey()) === null) {
    // No record, yet a single-shard keyspace (a release before shards, or REDIS_SHARDS=1) is
    // there: its rows would be left where the new shards do not look.
    const single = new Layout(layout.prefix, 1).home
    if (await redis.exists(single.queues(), single.tripwire(), single.consumers()) > 0) {
      throw new LayoutError(`this Redis holds a single-shard changeflow keyspace (REDIS_PREFIX ${layout.prefix}, no layout ` +
        `recorded), and REDIS_SHARDS is ${mine.shards}. Start with REDIS_SHARDS=1, or drain it and switch (see the README, ` +
        '"Changing the shard count")')
    }
  }
  await redis.set(layout.recordKey(), JSON.stringify(mine), 'NX')
  const text = await redis.get(layout.recordKey())
  let recorded: Recorded
  try {
    recorded = JSON.parse(text ?? '') as Recorded
  } catch {
    throw new LayoutError(`${layout.recordKey()} holds something that is not a changeflow layout: remove it, or use another REDIS_PREFIX`)
  }
  if (recorded.shards === mine.shards && JSON.stringify(recorded.tags) === JSON.stringify(tags)) return
  throw new LayoutError(`this Redis holds a changeflow keyspace (REDIS_PREFIX ${layout.prefix}) of ${recorded.shards} ` +
    `shard${recorded.shards === 1 ? '' : 's'}, and REDIS_SHARDS is ${mine.shards}. The shard count of a keyspace is fixed: ` +
    `set REDIS_SHARDS=${recorded.shards}, or drain the keyspace and switch (see the README, "Changing the shard count")`)
}
