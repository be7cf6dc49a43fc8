import { spawn } from 'node:child_process'
import type { AddressInfo } from 'node:net'
import { projectRoot } from '../../src/config.ts'
import type { Service } from './service.ts'

export interface Ran { code: number | null, stdout: string, stderr: string }

/**
 * `npx changeflow <args>` in the project, as an operator or a README example types it, with
 * only `env` (plus PATH and HOME) for its environment and `input` on its standard input.
 */
export function changeflow (args: readonly string[], env: Record<string, string> = {}, input?: string): Promise<Ran> {
  const child = spawn('npx', ['changeflow', ...args], {
    cwd: projectRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => { stdout += chunk })
  child.stderr.on('data', (chunk) => { stderr += chunk })
  child.stdin.end(input)
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })))
}

/** Makes the service's web side listen on a free loopback port; resolves to its base URL and port. */
export async function listen (service: Service): Promise<{ url: string, port: number }> {
  await service.web.app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = service.web.app.server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}`, port }
}

/** The environment a `changeflow` process needs to work with a test service: its Redis, prefix and token. */
export function envOf (service: Service, port?: number): Record<string, string> {
  return {
    REDIS_URL: service.redisUrl,
    REDIS_PREFIX: service.config.REDIS_PREFIX,
    SEQUIN_WEBHOOK_TOKENS: service.config.SEQUIN_WEBHOOK_TOKENS.join(','),
    JOBS_DIR: service.config.JOBS_DIR,
    ...(port === undefined ? {} : { PORT: String(port) }),
  }
}
