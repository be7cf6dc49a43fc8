import { randomUUID } from 'node:crypto'
import type { RedisClient } from './connection.ts'

/**
 * What one process knows about the data-loss marker. A fresh state (a process start) adopts
 * whatever marker it finds, or creates one: only a process that saw a marker can tell it vanished.
 */
export interface TripwireState {
  /** The marker's value as this process first read or wrote it; null until then. */
  seen: string | null
  /** When this process first saw it (ISO time). */
  seenAt: string | null
  /** Why Redis is known to have lost data. Once set it stays until the process restarts. */
  lost: string | null
}

/** created: no marker yet (a new Redis), so this process wrote one; skipped: a replica, nothing to write. */
export type TripwireOutcome = 'created' | 'present' | 'lost' | 'skipped'

export interface TripwireResult {
  outcome: TripwireOutcome
  problem: string | null
}

/** Under the service's hash tag; `_` never starts a queue name, so BullMQ's keys never collide. */
export function tripwireKey (prefix: string): string {
  return `{${prefix}}:_cf:tripwire`
}

export function createTripwireState (): TripwireState {
  return { seen: null, seenAt: null, lost: null }
}

function createdAt (marker: string): string {
  try {
    const parsed = JSON.parse(marker) as { createdAt?: unknown }
    if (typeof parsed.createdAt === 'string') return parsed.createdAt
  } catch {}
  return 'at an unknown time'
}

function lossMessage (key: string, state: TripwireState, current: string | null): string {
  const what = current === null ? 'is gone' : `was replaced by one created ${createdAt(current)}`
  return `Redis lost data: the marker key ${key} (created ${createdAt(state.seen!)}, ` +
    `seen by this process since ${state.seenAt}) ${what}. Redis was flushed, restarted without its ` +
    'data, or failed over to a replica that did not have it: changes already acknowledged to Sequin ' +
    'and queued steps may be gone. Find out what happened (Redis log, INFO persistence, failovers), ' +
    'have Sequin re-send what is missing (backfill the affected tables), then acknowledge by ' +
    'restarting every changeflow process: each re-creates or adopts the marker on start and becomes ready again'
}

/**
 * Writes the marker (no TTL) on a process's first check and compares it on every later one. The
 * marker is never re-created by a process that saw it vanish, so every process keeps refusing
 * until an operator restarts it.
 */
export async function checkTripwire (redis: RedisClient, key: string, state: TripwireState, writable: boolean): Promise<TripwireResult> {
  if (state.lost !== null) return { outcome: 'lost', problem: state.lost }

  if (state.seen === null) {
    if (!writable) return { outcome: 'skipped', problem: null }
    const marker = JSON.stringify({ id: randomUUID(), createdAt: new Date().toISOString() })
    const created = (await redis.set(key, marker, 'NX')) === 'OK'
    // Another process may have created it first: adopt theirs.
    const current = created ? marker : await redis.get(key)
    if (current === null) return { outcome: 'skipped', problem: null } // deleted in between; next check
    state.seen = current
    state.seenAt = new Date().toISOString()
    return { outcome: created ? 'created' : 'present', problem: null }
  }

  const current = await redis.get(key)
  if (current === state.seen) return { outcome: 'present', problem: null }
  state.lost = lossMessage(key, state, current)
  return { outcome: 'lost', problem: state.lost }
}
