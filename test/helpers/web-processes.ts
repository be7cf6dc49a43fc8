import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { freePort } from '../../src/redis/embedded.ts'
import { spawnRole, type RoleProcess } from './processes.ts'
import { proofJobsDir } from './proof.ts'
import { deleteKeys, waitFor } from './service.ts'

interface Teardown { teardown (fn: () => unknown): void }

/** A key prefix of its own on `redisUrl`, a client on it, and the deletion of its keys at the end. */
export function ownPrefix (t: Teardown, redisUrl: string): { prefix: string, redis: Redis } {
  const prefix = `t-${randomBytes(5).toString('hex')}`
  const redis = new Redis(redisUrl)
  redis.on('error', () => {})
  t.teardown(async () => {
    if (redis.status === 'ready') await deleteKeys(redis, `{${prefix}}*`)
    redis.disconnect()
  })
  return { prefix, redis }
}

export interface WebProcess {
  web: RoleProcess
  /** The webhook's URL. */
  url: string
  /** The process's own base URL (health, metrics, dashboard). */
  base: string
}

/**
 * `npm run web` on a free loopback port with the proof workflows, its own DATA_DIR, and its
 * output in the suite's log file `<test>.<name>-<n>`; stopped (SIGKILL) at the end of `t`. A port
 * taken between finding it free and listening on it (other test files run too) is tried again.
 */
export async function startWebProcess (t: Teardown, name: string, env: Record<string, string>): Promise<WebProcess> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const dataDir = mkdtempSync(join(tmpdir(), 'changeflow-fault-web-'))
    const web = spawnRole('web', { JOBS_DIR: proofJobsDir, DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: String(port), ...env }, name)
    t.teardown(async () => {
      await web.stop('SIGKILL')
      rmSync(dataDir, { recursive: true, force: true })
    })
    await waitFor(() => web.output().includes('Server listening') || web.child.exitCode !== null, 20_000, `${name} to listen`)
    if (web.child.exitCode === null) {
      const base = `http://127.0.0.1:${port}`
      return { web, url: `${base}/webhooks/sequin`, base }
    }
    if (!web.output().includes('EADDRINUSE') || attempt === 3) throw new Error(`${name} exited at start: ${web.output().slice(-2000)}`)
  }
}

/** The sum of a numeric field over a process's "batch accepted" log lines. */
export function acceptedTotal (web: RoleProcess, field: 'accepted' | 'duplicates' | 'unmatched' | 'quarantined' | 'jobs'): number {
  return web.lines().filter((line) => line.msg === 'batch accepted').reduce((sum, line) => sum + Number(line[field] ?? 0), 0)
}

export interface Credentials {
  token: string
  wrongToken: string
  username: string
  password: string
  wrongPassword: string
  metricsToken: string
}

/**
 * Sends each credential the way a client would, right and wrong (the webhook's bearer token, the
 * dashboard's basic auth, the metrics token), so that the suite's secret scan looks for them in
 * logs written while they were in flight. Resolves with each request's status.
 */
export async function exerciseCredentials (base: string, c: Credentials): Promise<Record<string, number>> {
  const basic = (password: string) => `Basic ${Buffer.from(`${c.username}:${password}`).toString('base64')}`
  const requests: Record<string, [string, RequestInit]> = {
    'webhook, wrong token': ['/webhooks/sequin', { method: 'POST', headers: { authorization: `Bearer ${c.wrongToken}`, 'content-type': 'application/json' }, body: '{"data":[{}]}' }],
    'webhook, no batch': ['/webhooks/sequin', { method: 'POST', headers: { authorization: `Bearer ${c.token}`, 'content-type': 'application/json' }, body: '{"data":' }],
    dashboard: ['/admin/queues', { headers: { authorization: basic(c.password) } }],
    'dashboard API': ['/admin/queues/api/queues', { headers: { authorization: basic(c.password) } }],
    'dashboard, wrong password': ['/admin/queues', { headers: { authorization: basic(c.wrongPassword) } }],
    metrics: ['/metrics', { headers: { authorization: `Bearer ${c.metricsToken}` } }],
    'metrics, webhook token': ['/metrics', { headers: { authorization: `Bearer ${c.token}` } }],
  }
  const statuses: Record<string, number> = {}
  for (const [name, [path, init]] of Object.entries(requests)) {
    const response = await fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(10_000) })
    await response.arrayBuffer()
    statuses[name] = response.status
  }
  return statuses
}

/** What exerciseCredentials should get back. */
export const CREDENTIAL_STATUSES = {
  'webhook, wrong token': 401,
  'webhook, no batch': 400,
  dashboard: 200,
  'dashboard API': 200,
  'dashboard, wrong password': 401,
  metrics: 200,
  'metrics, webhook token': 401,
}
