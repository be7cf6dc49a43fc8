import { changeId, changeIdentity, rowId, runId, stepJobId } from '../../src/ingest/identity.ts'
import type { StepJobData } from '../../src/ingest/plan.ts'
import type { SequinMessage } from '../../src/sequin/message.ts'
import type { Message } from './workload.ts'

export interface BareJob {
  name: string
  data: StepJobData
  opts: Record<string, unknown> & { jobId: string }
}

/**
 * What a bare BullMQ producer would add for a message: the same job id changeflow derives, the
 * same data (so the same bytes reach Redis) and the same options, without validation, routing,
 * deduplication or ordering.
 */
export function bareJob (raw: Message, workflow: string, step: string, stepIndex: number, opts: Record<string, unknown>): BareJob {
  const message = raw as unknown as SequinMessage
  const { metadata } = message
  const change = changeId(metadata)
  const run = runId(change, workflow)
  const table = `${metadata.table_schema}.${metadata.table_name}`
  const key = (metadata.record_pks ?? []).map(String)
  return {
    name: step,
    data: {
      workflow,
      step,
      stepIndex,
      run,
      changeId: change,
      row: rowId(changeIdentity(metadata).source, metadata.table_schema, metadata.table_name, 'pk', key),
      table,
      key,
      action: message.action,
      commitTimestamp: metadata.commit_timestamp,
      change: message,
    },
    opts: { ...opts, jobId: stepJobId(run, step) },
  }
}
