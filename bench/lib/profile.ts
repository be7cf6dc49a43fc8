import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { join } from 'node:path'

/** The parts of a V8 `.cpuprofile` (written by `node --cpu-prof`) that a summary needs. */
interface CpuProfile {
  nodes: Array<{ id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number }>
}

export interface ProfileShare {
  /** A package (`fastify`, `ioredis`), `changeflow` for the project's own code, or `node` internals. */
  where: string
  share: number
}

/** Where a function lives, coarsely: the package under node_modules, the project's folder, or V8/Node. */
function owner (url: string, functionName: string): string {
  if (url === '') return functionName === '(garbage collector)' ? 'garbage collection' : functionName === '(idle)' || functionName === '(program)' ? functionName : 'node'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg) return pkg[1]!
  if (url.startsWith('node:')) return 'node'
  const own = /\/(src|routes|jobs|bench)\/(.*)$/.exec(url)
  return own ? `${own[1]}/${own[2]}` : url
}

/**
 * Self time by owner from the main thread's profile in `dir` (`CPU.<date>.<time>.<pid>.0.<n>`:
 * thread 0; a loader's worker thread writes its own), idle excluded: what bounds a receiver.
 */
export function summariseProfile (dir: string, top = 8): { shares: ProfileShare[], functions: ProfileShare[] } {
  const file = readdirSync(dir).find((name) => /\.0\.\d+\.cpuprofile$/.test(name))
  if (!file) return { shares: [], functions: [] }
  const main = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile
  const byOwner = new Map<string, number>()
  const byFunction = new Map<string, number>()
  let total = 0
  for (const node of main.nodes) {
    const { functionName, url, lineNumber } = node.callFrame
    const count = node.hitCount ?? 0
    if (count === 0 || functionName === '(idle)') continue
    total += count
    const where = owner(url, functionName)
    byOwner.set(where, (byOwner.get(where) ?? 0) + count)
    const name = `${functionName || '(anonymous)'} ${where}${url ? `:${lineNumber + 1}` : ''}`
    byFunction.set(name, (byFunction.get(name) ?? 0) + count)
  }
  const ranked = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([where, count]) => ({ where, share: count / total }))
  return { shares: ranked(byOwner), functions: ranked(byFunction) }
}

/** A V8 CPU profile of this process from now until `stop`, which writes it as `--cpu-prof` would. */
export async function startProfiler (): Promise<{ stop: (file: string) => Promise<void> }> {
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.start')
  return {
    async stop (file) {
      const { profile } = await session.post('Profiler.stop')
      writeFileSync(file, JSON.stringify(profile))
      session.disconnect()
    },
  }
}
