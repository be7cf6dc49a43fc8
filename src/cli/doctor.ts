import type { Command } from 'commander'
import type { Config } from '../config.ts'
import { diagnose, type Diagnosis } from '../operations/doctor.ts'
import { WEBHOOK_PATH } from './http.ts'
import { EXIT, type Session } from './session.ts'

/** What to paste into Sequin (sequin.yaml): the endpoint, its header, one sink per watched table. */
export interface SinkSettings {
  url: string
  path: string
  header: string
  batchSize: number
  tables: string[]
  yaml: string
}

export function sinkSettings (config: Config, workflows: NonNullable<Diagnosis['workflows']>, url: string | undefined): SinkSettings {
  const base = (url ?? `http://<this host>:${config.PORT}`).replace(/\/$/, '')
  // Sequin's batch_size goes up to 1,000; a request over MAX_BATCH_MESSAGES is refused (413).
  const batchSize = Math.min(100, config.MAX_BATCH_MESSAGES)
  const tables = [...new Set(workflows.map((workflow) => (workflow.table.includes('.') ? workflow.table : `public.${workflow.table}`)))].sort()
  const sinks = tables.map((table) => `  - name: "changeflow-${table.replace(/^public\./, '').replace(/[^a-z0-9]+/gi, '-')}"
    database: "<your-database>"
    table: "${table}"
    batch_size: ${batchSize}
    destination:
      type: "webhook"
      http_endpoint: "changeflow"
      http_endpoint_path: "${WEBHOOK_PATH}"
      batch: true`)
  const yaml = `http_endpoints:
  - name: "changeflow"
    url: "${base}"
    encrypted_headers:
      - key: "Authorization"
        value: "Bearer <one of SEQUIN_WEBHOOK_TOKENS>"
sinks:
${sinks.join('\n') || '  [] # no workflow watches a table yet'}`
  return { url: base, path: WEBHOOK_PATH, header: 'Authorization: Bearer <one of SEQUIN_WEBHOOK_TOKENS>', batchSize, tables, yaml }
}

/** `doctor`: configuration, Redis, workflows, orphaned work and the Sequin settings; exit 1 on a problem. */
export function registerDoctor (program: Command, session: Session): void {
  program.command('doctor')
    .description('check the configuration, Redis, the workflows and orphaned work; print the Sequin sink settings to paste')
    .option('--url <url>', 'the address Sequin reaches this service at, for the settings to paste')
    .option('--json', 'print the diagnosis as one JSON object')
    .addHelpText('after', `
Exit code 0 when nothing is wrong (warnings are printed, and allowed), 1 when something is.

Example:
  changeflow doctor`)
    .action((options: { url?: string, json?: boolean }) => session.run(async () => {
      const diagnosis = await diagnose({
        env: session.deps.env ?? {},
        config: () => session.config(),
        redis: () => session.redis(),
        layout: () => session.layout(),
      })
      const sequin = diagnosis.config.valid && diagnosis.workflows ? sinkSettings(session.config(), diagnosis.workflows, options.url) : undefined
      if (options.json) session.json({ ...diagnosis, sequin })
      else print(session, diagnosis, sequin)
      return diagnosis.ok ? EXIT.ok : EXIT.failed
    }))
}

function print (session: Session, diagnosis: Diagnosis, sequin: SinkSettings | undefined): void {
  const out = (line: string) => session.out(line)
  const set = Object.entries(diagnosis.config.set)
  out(`configuration: ${diagnosis.config.valid ? 'valid' : 'INVALID'}; set: ${set.map(([key, value]) => `${key}=${value}`).join(' ') || 'nothing (defaults)'}`)
  const redis = diagnosis.redis
  if (redis?.reachable) {
    for (const node of redis.nodes ?? []) {
      const s = node.settings
      out(`redis ${node.address}: version ${s.version}, role ${s.role}, maxmemory-policy ${s.maxmemoryPolicy ?? 'unknown'}, ` +
        `appendonly ${s.appendonly ?? 'unknown'}, appendfsync ${s.appendfsync ?? 'unknown'}`)
    }
    for (const tripwire of redis.tripwires ?? []) out(`tripwire ${tripwire.key}: ${tripwire.createdAt === null ? 'absent' : `present since ${tripwire.createdAt}`}`)
    const layout = redis.layout!
    out(`layout: ${layout.recorded ?? 'not recorded'} shards recorded, REDIS_SHARDS ${layout.configured}` +
      (layout.shards.some((shard) => shard.node) ? `; ${layout.shards.map((shard) => `shard ${shard.shard} on ${shard.node ?? '?'}`).join(', ')}` : ''))
  } else if (redis) {
    out('redis: unreachable')
  }
  for (const workflow of diagnosis.workflows ?? []) {
    out(`workflow ${workflow.name}: ${workflow.table} on ${workflow.on.join(',')}; steps ${workflow.steps.join(' → ')}` +
      `${workflow.ordered ? '' : '; unordered'}${workflow.late === 'skip' ? '; skips late changes' : ''}`)
  }
  if (diagnosis.work) {
    const queues = diagnosis.work.queues.filter((queue) => queue.jobs > 0)
    out(`work: ${queues.map((queue) => `${queue.queue} ${queue.jobs}${queue.consumed ? '' : ' (no worker)'}`).join(', ') || 'no queue holds work'}`)
  }
  if (sequin) {
    out('')
    out('Sequin sink settings (sequin.yaml; the token is one of SEQUIN_WEBHOOK_TOKENS, as an encrypted header):')
    for (const line of sequin.yaml.split('\n')) out(`  ${line}`)
    out('')
  }
  for (const problem of diagnosis.problems) out(`✗ ${problem}`)
  for (const warning of diagnosis.warnings) out(`! ${warning}`)
  out(`doctor: ${diagnosis.problems.length} problems, ${diagnosis.warnings.length} warnings`)
}
