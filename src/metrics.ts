import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'

/**
 * One registry per process: `npm start` shares it between the webhook and the workers; a
 * separate worker process serves its own. Labels name workflows, steps, tables, actions and
 * statuses only: never row data or secrets.
 */
export class Metrics {
  readonly registry = new Registry()

  readonly httpRequests = new Counter({
    name: 'changeflow_http_requests_total',
    help: 'HTTP requests by route, method and status.',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  })

  readonly httpDuration = new Histogram({
    name: 'changeflow_http_request_duration_seconds',
    help: 'HTTP request latency by route and method.',
    labelNames: ['route', 'method'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  })

  readonly messages = new Counter({
    name: 'changeflow_messages_total',
    help: 'Sequin messages received, by table, action and outcome (accepted, duplicate, unmatched, quarantined).',
    labelNames: ['table', 'action', 'outcome'] as const,
    registers: [this.registry],
  })

  readonly emptyChanges = new Counter({
    name: 'changeflow_updates_without_changes_total',
    help: 'Updates that arrived with empty "changes" (table lacks REPLICA IDENTITY FULL), by table.',
    labelNames: ['table'] as const,
    registers: [this.registry],
  })

  readonly lateRuns = new Counter({
    name: 'changeflow_late_runs_total',
    help: 'Runs of changes older than their row\'s newest, by what happened to them (run or skipped).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  })

  readonly stepsEnqueued = new Counter({
    name: 'changeflow_steps_enqueued_total',
    help: 'Steps enqueued (or parked behind their row) by workflow and step.',
    labelNames: ['workflow', 'step'] as const,
    registers: [this.registry],
  })

  readonly stepsCompleted = new Counter({
    name: 'changeflow_steps_completed_total',
    help: 'Steps completed by workflow and step.',
    labelNames: ['workflow', 'step'] as const,
    registers: [this.registry],
  })

  readonly stepsRetried = new Counter({
    name: 'changeflow_steps_retried_total',
    help: 'Step attempts that failed and will be retried, by workflow and step.',
    labelNames: ['workflow', 'step'] as const,
    registers: [this.registry],
  })

  readonly stepsFailed = new Counter({
    name: 'changeflow_steps_failed_total',
    help: 'Steps that failed for good (attempts exhausted or a permanent error), by workflow and step.',
    labelNames: ['workflow', 'step'] as const,
    registers: [this.registry],
  })

  readonly stepDuration = new Histogram({
    name: 'changeflow_step_duration_seconds',
    help: 'Duration of successful step executions, by workflow and step.',
    labelNames: ['workflow', 'step'] as const,
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300],
    registers: [this.registry],
  })

  readonly runLag = new Histogram({
    name: 'changeflow_run_lag_seconds',
    help: 'From the change\'s commit_timestamp to the completion of its run\'s last step, by workflow.',
    labelNames: ['workflow'] as const,
    buckets: [0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, 3600, 86400],
    registers: [this.registry],
  })

  constructor (options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'changeflow_' })
  }

  /**
   * A counter whose totals live in Redis (kept by other processes, such as an operator's CLI),
   * read when Prometheus scrapes: `set` gives each label set its current total.
   */
  counterFromRedis (name: string, help: string, labelNames: readonly string[], collect: (set: (labels: Record<string, string>, total: number) => void) => Promise<void>): Counter {
    return new Counter({ name, help, labelNames, registers: [this.registry], collect: collectAfresh<Counter>((counter) => collect((labels, total) => counter.inc(labels, total))) })
  }

  /** Gauges read from Redis when Prometheus scrapes (queue depths, rows waiting or blocked). */
  gauge (name: string, help: string, labelNames: readonly string[], collect: (gauge: Gauge) => Promise<void>): Gauge {
    return new Gauge({ name, help, labelNames, registers: [this.registry], collect: collectAfresh<Gauge>(collect) })
  }
}

/** A metric's scrape-time collect: every value read anew, so that a label set gone from Redis goes from the scrape. */
function collectAfresh<T extends { reset (): void }> (collect: (metric: T) => Promise<void>): (this: T) => Promise<void> {
  return async function (this: T) {
    this.reset()
    await collect(this)
  }
}
