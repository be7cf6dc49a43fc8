import { Cluster } from 'ioredis'
import type { RedisClient } from './connection.ts'

/**
 * The keys a script call declares (KEYS). On a standalone Redis only the first, which the script
 * reads as KEYS[1]. On a cluster every key the script may touch, however its Lua builds the
 * names: while a reshard moves the shard's slot, Redis then answers TRYAGAIN (ioredis retries)
 * or ASK before the script runs, rather than let it run on a node that has some of its keys and
 * not others, where it would fail half-way or create a second copy of a key the other node still
 * holds. Duplicates are dropped; the first key stays first.
 */
export function declaredKeys (redis: RedisClient, first: string, rest: () => Iterable<string>): string[] {
  if (!(redis instanceof Cluster)) return [first]
  const keys = new Set([first])
  for (const key of rest()) keys.add(key)
  return [...keys]
}
