import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { packageVersion } from '../bapi/client.ts';
import type { ReplicaStatus } from '../replica/status.ts';
import type { PipelineStats } from '../stats.ts';
import { withTimeout } from '../lifecycle/time-limit.ts';

export interface CreateMetricsOptions {
  /** The pipeline's counters; read at every scrape, never copied. */
  stats: PipelineStats;
  /** Jobs of the sync queue per state (BullMQ's `getJobCounts()`), read at scrape time. Omit when this process has no queue. */
  queueCounts?: () => Promise<Record<string, number>>;
  /** When the oldest sync job ready to run was queued (ms since the epoch), or undefined when none waits. */
  queueOldestAt?: () => Promise<number | undefined>;
  /** Mirror rows per status (`MirrorReader.statusCounts`), read at scrape time. Omit when this process has no mirror. */
  mirrorCounts?: () => Record<string, number>;
  /** When the last reconciliation succeeded (ms since the epoch), or undefined if never. */
  lastReconcileAt?: () => number | undefined | Promise<number | undefined>;
  /** The shared BAPI budget as last looked at (bapi/budget-watch.ts). Omit when this process runs no worker. */
  budget?: () => BudgetReading | undefined;
  /** This process's replica, read at scrape time. Omit when it runs none. */
  replicaStatus?: () => Promise<ReplicaStatus>;
  /**
   * Also expose Node's process metrics (CPU, memory, event loop lag, GC) under their standard
   * names (`process_…`, `nodejs_…`), which the usual Node.js dashboards query.
   * @defaultValue true
   */
  defaultMetrics?: boolean;
  /**
   * How long a scrape waits for `queueCounts` before leaving queue depth out.
   * @defaultValue 2000
   */
  collectTimeoutMs?: number;
  /** @defaultValue Date.now */
  now?: () => number;
}

export interface BudgetReading {
  spent: number;
  max: number;
  blocked: boolean;
  spentForMs: number;
}

/** The service's Prometheus metrics: counters read from PipelineStats at scrape time, plus histograms fed by its timing observer. */
export interface MirrorMetrics {
  readonly registry: Registry;
  /** The whole registry in Prometheus text format. */
  render(): Promise<string>;
}

const PREFIX = 'clerk_mirror_';
const seconds = (ms: number) => Math.max(0, ms) / 1000;

/** Builds a fresh Registry (never the global one) so several services or tests in one process do not collide. */
export function createMetrics(opts: CreateMetricsOptions): MirrorMetrics {
  const { stats, queueCounts, queueOldestAt, mirrorCounts, lastReconcileAt, replicaStatus, budget, defaultMetrics = true, collectTimeoutMs = 2000, now = Date.now } = opts;
  const registry = new Registry();
  const registers = [registry];
  if (defaultMetrics) collectDefaultMetrics({ register: registry });
  new Gauge({
    name: `${PREFIX}build_info`,
    help: 'Always 1; the version of the mirror and of Node.js running it, as labels.',
    labelNames: ['version', 'node'] as const,
    registers,
  }).set({ version: packageVersion(), node: process.versions.node }, 1);

  new Counter({
    name: `${PREFIX}webhooks_total`,
    help: 'Webhook deliveries by outcome (accepted, ignored, rejected, unavailable) and event type (the refusal reason for rejected ones).',
    labelNames: ['outcome', 'type'] as const,
    registers,
    collect() {
      this.reset();
      for (const [key, n] of stats.webhooks) {
        const at = key.indexOf(':');
        this.inc({ outcome: key.slice(0, at), type: key.slice(at + 1) }, n);
      }
    },
  });

  /** A counter whose value is one of the pipeline's counts, read at every scrape. */
  const countOf = (name: string, help: string, read: () => number) =>
    new Counter({
      name: `${PREFIX}${name}`,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read());
      },
    });

  /** A counter of a `a|b` keyed map of the pipeline's, read at every scrape. */
  const pairsOf = (name: string, help: string, labels: readonly [string, string], source: () => Map<string, number>) =>
    new Counter({
      name: `${PREFIX}${name}`,
      help,
      labelNames: labels,
      registers,
      collect() {
        this.reset();
        for (const [key, n] of source()) {
          const at = key.indexOf('|');
          this.inc({ [labels[0]]: key.slice(0, at), [labels[1]]: key.slice(at + 1) }, n);
        }
      },
    });

  countOf('webhook_signature_failures_total', 'Webhook deliveries refused because their Svix signature did not verify.', () => stats.webhooks.get('rejected:bad_signature') ?? 0);

  const enqueue = new Histogram({
    name: `${PREFIX}enqueue_duration_seconds`,
    help: 'Time to make a webhook event durable in Redis before answering Svix.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });

  new Counter({
    name: `${PREFIX}jobs_total`,
    help: 'Sync jobs by outcome: completed, failed (attempts exhausted or unrecoverable), retried, rate_limited (BAPI answered 429), skipped (completed without a BAPI call: the mirror already held that version), deferred (waited once for its organization\'s batch).',
    labelNames: ['outcome'] as const,
    registers,
    collect() {
      this.reset();
      const j = stats.jobs;
      this.inc({ outcome: 'completed' }, j.completed);
      this.inc({ outcome: 'failed' }, j.failed);
      this.inc({ outcome: 'retried' }, j.retried);
      this.inc({ outcome: 'rate_limited' }, j.rateLimited);
      this.inc({ outcome: 'skipped' }, j.skipped);
      this.inc({ outcome: 'deferred' }, j.deferred);
    },
  });

  countOf('batch_pages_total', 'Organization list pages the worker fetched for bulk changes (one call each, instead of a GET per invitation).', () => stats.batches.pages);
  countOf('batch_invitations_total', 'Invitations published from organization list pages for bulk changes.', () => stats.batches.published);

  new Counter({
    name: `${PREFIX}bapi_stale_reads_total`,
    help: 'BAPI answered an older state than the webhook announced: retried (fetched again after the backoff) or settled (the wait was over; the newest answer was published).',
    labelNames: ['outcome'] as const,
    registers,
    collect() {
      this.reset();
      for (const [outcome, n] of Object.entries(stats.staleReads)) this.inc({ outcome }, n);
    },
  });

  new Counter({
    name: `${PREFIX}suspect_events_total`,
    help: 'Signed events whose claims were not taken (a Clerk bug or a leaked signing secret): future_updated_at (beyond our clock plus the allowed skew: queued without that version), other_organization (a 404 under the organization an event named for an invitation held under another: not tombstoned).',
    labelNames: ['kind'] as const,
    registers,
    collect() {
      this.reset();
      this.inc({ kind: 'future_updated_at' }, stats.suspectEvents.futureUpdatedAt);
      this.inc({ kind: 'other_organization' }, stats.suspectEvents.otherOrganization);
    },
  });

  /** A counter of a one-label map of the pipeline's, read at every scrape. */
  const byOneLabel = (name: string, help: string, label: string, source: () => Map<string, number>) =>
    new Counter({
      name: `${PREFIX}${name}`,
      help,
      labelNames: [label],
      registers,
      collect() {
        this.reset();
        for (const [value, n] of source()) this.inc({ [label]: value }, n);
      },
    });
  byOneLabel('replica_write_failures_total', "Writes of this process's replica to its SQLite file that failed and are retried (its position does not move past them), by SQLite's code (SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY, SQLITE_READONLY…).", 'code', () => stats.replicaWriteFailures);
  byOneLabel('replica_file_reopens_total', "Times this process's replica opened its file again because it was deleted or replaced under it.", 'change', () => stats.replicaFileReopens);

  new Counter({
    name: `${PREFIX}state_publishes_total`,
    help: "The worker's publishes into the shared state by outcome (inserted, updated, unchanged, stale, tombstoned).",
    labelNames: ['outcome'] as const,
    registers,
    collect() {
      this.reset();
      for (const [outcome, n] of Object.entries(stats.writes)) this.inc({ outcome }, n);
    },
  });

  pairsOf('bapi_requests_total', "Calls to Clerk's Backend API made by this process, by caller (webhook, expiry, reconcile, organization, derived, batch, backfill, lookup) and HTTP status or error kind.", ['caller', 'status'], () => stats.bapi);

  pairsOf('read_requests_total', 'Read API answers (/v1/...) by route (invitation, list, pending_list, other) and HTTP status.', ['route', 'status'], () => stats.reads);
  const readDuration = new Histogram({
    name: `${PREFIX}read_request_duration_seconds`,
    help: 'Time the read API took to answer, by route.',
    labelNames: ['route'] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    registers,
  });
  // One child per route: the read path must not hash label objects per request.
  const readChildren = new Map<string, { observe(v: number): void }>();
  const readTimer = (route: string) => {
    let child = readChildren.get(route);
    if (!child) readChildren.set(route, (child = readDuration.labels({ route })));
    return child;
  };
  pairsOf('drift_total', "Drift the reconciliations run by this process found between the shared state and Clerk, by kind (missing, outdated, content, expired, gone) and action (found, repaired; a dry run repairs nothing).", ['kind', 'action'], () => stats.drift);

  const bapi = new Histogram({
    name: `${PREFIX}bapi_request_duration_seconds`,
    help: "Duration of calls to Clerk's Backend API by HTTP status or error kind.",
    labelNames: ['status'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });

  countOf('rate_limit_waits_total', 'Times the sync queue paused because BAPI answered 429.', () => stats.jobs.rateLimited);

  const rateLimitWait = new Counter({
    name: `${PREFIX}rate_limit_wait_seconds_total`,
    help: 'Time the sync queue spent paused by BAPI 429 answers (Retry-After).',
    registers,
  });

  const lag = new Histogram({
    name: `${PREFIX}sync_lag_seconds`,
    help: 'From the receiver accepting an event to the shared state holding the invitation (worker).',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
    registers,
  });

  const replicaLag = new Histogram({
    name: `${PREFIX}replica_lag_seconds`,
    help: "From the receiver accepting an event to this process's replica applying the change.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
    registers,
  });

  const collectErrors = new Counter({
    name: `${PREFIX}metrics_collect_errors_total`,
    help: 'Scrapes where a source could not be read (its gauge is left out of that scrape).',
    labelNames: ['source'] as const,
    registers,
  });

  if (queueCounts) {
    new Gauge({
      name: `${PREFIX}queue_jobs`,
      help: 'Jobs in the sync queue by state, read at scrape time.',
      labelNames: ['state'] as const,
      registers,
      async collect() {
        this.reset();
        try {
          const counts = await withTimeout(queueCounts(), collectTimeoutMs);
          for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
        } catch {
          collectErrors.inc({ source: 'queue' });
        }
      },
    });
  }

  if (queueOldestAt) {
    new Gauge({
      name: `${PREFIX}queue_oldest_waiting_seconds`,
      help: 'Age of the oldest sync job ready to run and not yet taken by a worker (0 when none waits): grows while no worker runs or every worker is stuck.',
      registers,
      async collect() {
        try {
          const at = await queueOldestAt();
          this.set(at === undefined ? 0 : seconds(now() - at));
        } catch {
          collectErrors.inc({ source: 'queue' });
        }
      },
    });
  }

  if (budget) {
    const budgetGauge = (name: string, help: string, value: (b: BudgetReading) => number) =>
      new Gauge({
        name: `${PREFIX}${name}`,
        help,
        registers,
        collect() {
          const b = budget();
          if (b) this.set(value(b));
        },
      });
    budgetGauge('bapi_budget_limit_requests', 'The BAPI requests per window every caller of the mirror shares (BAPI_RATE_LIMIT).', (b) => b.max);
    budgetGauge('bapi_budget_spent_requests', 'Requests of the current window already spent, by every host of the mirror (the limit while a 429 blocks it); sampled every 5 s.', (b) => b.spent);
    budgetGauge('bapi_budget_exhausted_seconds', 'How long the whole share has been spent without a break (0 when it is not): above 60 the service warns.', (b) => Math.round(b.spentForMs / 1000));
  }

  if (mirrorCounts) {
    new Gauge({
      name: `${PREFIX}invitations`,
      help: 'Invitations held by the mirror by status (tombstoned: BAPI answered 404), read at scrape time.',
      labelNames: ['status'] as const,
      registers,
      collect() {
        this.reset();
        try {
          for (const [status, n] of Object.entries(mirrorCounts())) this.set({ status }, n);
        } catch {
          collectErrors.inc({ source: 'mirror' });
        }
      },
    });
  }

  if (lastReconcileAt) {
    new Gauge({
      name: `${PREFIX}last_reconcile_timestamp_seconds`,
      help: 'When the last successful reconciliation finished (Unix seconds); 0 until one has, so `time() - this` alerts on "never" as on "long ago".',
      registers,
      async collect() {
        try {
          const at = await lastReconcileAt();
          this.set(at === undefined ? 0 : Math.floor(at / 1000));
        } catch {
          collectErrors.inc({ source: 'reconcile' });
        }
      },
    });
  }

  if (replicaStatus) {
    let latest: Promise<ReplicaStatus | undefined> | undefined;
    // One status read per scrape, shared by the gauges below.
    const read = () => (latest ??= replicaStatus().catch(() => undefined).finally(() => setImmediate(() => (latest = undefined))));
    const gauge = (name: string, help: string, value: (s: ReplicaStatus) => number | undefined, labelNames: string[] = []) =>
      new Gauge({
        name: `${PREFIX}${name}`,
        help,
        labelNames,
        registers,
        async collect() {
          this.reset();
          const s = await read();
          if (!s) {
            collectErrors.inc({ source: 'replica' });
            return;
          }
          const v = value(s);
          if (v !== undefined) this.set(v);
        },
      });
    new Gauge({
      name: `${PREFIX}replica_state`,
      help: 'The replica\'s state: 1 for the current one of bootstrapping, following, stale.',
      labelNames: ['state'] as const,
      registers,
      async collect() {
        this.reset();
        const s = await read();
        if (!s) return;
        for (const state of ['bootstrapping', 'following', 'stale'] as const) this.set({ state }, s.state === state ? 1 : 0);
      },
    });
    gauge('replica_entries_behind', 'Changes published to the shared state and not yet applied by this replica (absent while Redis does not answer).', (s) => s.entriesBehind);
    gauge('replica_seconds_behind', 'Age of the oldest change this replica has not applied (0 when caught up), or seconds since Redis last answered.', (s) =>
      Number.isFinite(s.secondsBehind) ? s.secondsBehind : undefined,
    );
    gauge('replica_state_filled', '1 when the shared state has had a complete pass over Clerk\'s lists (backfill or reconciliation).', (s) => (s.filled ? 1 : 0));
    gauge('replica_seq', 'Sequence number of the last change this replica applied.', (s) => s.seq);
    new Counter({
      name: `${PREFIX}replica_bootstraps_total`,
      help: 'Snapshot loads by this replica since the process started.',
      registers,
      async collect() {
        this.reset();
        const s = await read();
        if (s) this.inc(s.bootstraps);
      },
    });
    countOf('replica_applied_total', 'Changes this replica applied from the change stream.', () => stats.replica.applied);
  }

  stats.observe({
    enqueue: (ms) => enqueue.observe(seconds(ms)),
    bapi: (ms, status) => bapi.observe({ status }, seconds(ms)),
    lag: (ms) => lag.observe(seconds(ms)),
    replicaLag: (ms) => replicaLag.observe(seconds(ms)),
    rateLimitWait: (ms) => rateLimitWait.inc(seconds(ms)),
    read: (route, ms) => readTimer(route).observe(seconds(ms)),
  });

  return {
    registry,
    render: () => registry.metrics(),
  };
}
