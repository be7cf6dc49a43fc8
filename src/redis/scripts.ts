import { readFileSync } from 'node:fs'
import type { RedisClient } from './connection.ts'
// BullMQ's own add-job and finish-job scripts: see lua/prelude.lua for why we compose with them.
import { addStandardJob } from 'bullmq/dist/esm/scripts/addStandardJob-9.js'
import { moveToFinished } from 'bullmq/dist/esm/scripts/moveToFinished-14.js'

const lua = (name: string) => readFileSync(new URL(`lua/${name}.lua`, import.meta.url), 'utf8')

/** A script: BullMQ's add wrapped as a function, the prelude, then `parts` and `body`. */
export function compose (body: string, ...parts: string[]): string {
  if (addStandardJob.keys !== 9) {
    throw new Error(`bullmq's addStandardJob takes ${addStandardJob.keys} keys; changeflow expects 9: update src/redis/lua`)
  }
  return [
    `local function bullmqAddStandardJob(KEYS, ARGV)\n${addStandardJob.content}\nend`,
    lua('prelude'),
    ...parts,
    body,
  ].join('\n')
}

/** How many keys BullMQ's moveToFinished takes: the first keys of the complete script. */
export const FINISH_KEYS = 14
if (moveToFinished.keys !== FINISH_KEYS) {
  throw new Error(`bullmq's moveToFinished takes ${moveToFinished.keys} keys; changeflow expects ${FINISH_KEYS}: update src/redis/lua/complete.lua`)
}
const finish = `local function bullmqMoveToFinished(KEYS, ARGV)\n${moveToFinished.content}\nend`

export const scriptSources = {
  ingest: compose(lua('ingest')),
  advance: compose(lua('advance'), lua('advance-step')),
  complete: compose(lua('complete'), lua('advance-step'), finish),
  reconcile: compose(lua('reconcile')),
  block: compose(lua('block')),
  late: compose(lua('late')),
}

type Arg = string | number | Buffer

export interface ChangeflowCommands {
  cfIngest (numKeys: number, ...args: Arg[]): Promise<number[]>
  cfAdvance (numKeys: number, ...args: Arg[]): Promise<number>
  cfComplete (numKeys: number, ...args: Arg[]): Promise<unknown>
  cfReconcile (numKeys: number, ...args: Arg[]): Promise<'empty' | 'running' | 'blocked' | 'started' | 'finished' | 'discarded' | 'moved'>
  cfBlock (numKeys: number, ...args: Arg[]): Promise<0 | 1>
  cfLate (numKeys: number, ...args: Arg[]): Promise<number[]>
}

export type ScriptedRedis = RedisClient & ChangeflowCommands

/** Registers the scripts on a client (EVALSHA, falling back to EVAL once per connection). */
export function withScripts (redis: RedisClient): ScriptedRedis {
  const scripted = redis as ScriptedRedis
  if (typeof scripted.cfIngest !== 'function') {
    redis.defineCommand('cfIngest', { lua: scriptSources.ingest })
    redis.defineCommand('cfAdvance', { lua: scriptSources.advance })
    redis.defineCommand('cfComplete', { lua: scriptSources.complete })
    redis.defineCommand('cfReconcile', { lua: scriptSources.reconcile })
    redis.defineCommand('cfBlock', { lua: scriptSources.block })
    redis.defineCommand('cfLate', { lua: scriptSources.late })
  }
  return scripted
}
