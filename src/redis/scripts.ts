import { readFileSync } from 'node:fs'
import type { RedisClient } from './connection.ts'
// BullMQ's own add-job script: see lua/prelude.lua for why we compose with it.
import { addStandardJob } from 'bullmq/dist/esm/scripts/addStandardJob-9.js'

const lua = (name: string) => readFileSync(new URL(`lua/${name}.lua`, import.meta.url), 'utf8')

function compose (body: string): string {
  if (addStandardJob.keys !== 9) {
    throw new Error(`bullmq's addStandardJob takes ${addStandardJob.keys} keys; changeflow expects 9: update src/redis/lua`)
  }
  return [
    `local function bullmqAddStandardJob(KEYS, ARGV)\n${addStandardJob.content}\nend`,
    lua('prelude'),
    body,
  ].join('\n')
}

export const scriptSources = {
  ingest: compose(lua('ingest')),
  advance: compose(lua('advance')),
  reconcile: compose(lua('reconcile')),
  block: compose(lua('block')),
  late: compose(lua('late')),
}

type Arg = string | number | Buffer

export interface ChangeflowCommands {
  cfIngest (numKeys: number, ...args: Arg[]): Promise<number[]>
  cfAdvance (numKeys: number, ...args: Arg[]): Promise<number>
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
    redis.defineCommand('cfReconcile', { lua: scriptSources.reconcile })
    redis.defineCommand('cfBlock', { lua: scriptSources.block })
    redis.defineCommand('cfLate', { lua: scriptSources.late })
  }
  return scripted
}
