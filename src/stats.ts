/** Receives timings as they happen (the metrics module feeds its histograms from these). */
export interface StatsObserver {
  enqueue?(ms: number): void;
  bapi?(ms: number, result: string): void;
  /** Event accepted → its state published into the shared state. */
  lag?(ms: number): void;
  /** Event accepted → its state applied by this process's replica. */
  replicaLag?(ms: number): void;
  rateLimitWait?(ms: number): void;
  /** A read API request answered (route: invitation, list, pending_list, other). */
  read?(route: ReadRoute, ms: number): void;
}

/** The read API's routes, as metric labels. */
export type ReadRoute = 'invitation' | 'list' | 'pending_list' | 'other';

/** The latest timing samples, for percentiles; the older half is dropped when full. */
class Samples {
  private xs: number[] = [];
  constructor(private readonly max: number) {}
  add(ms: number): void {
    if (this.xs.length >= this.max) this.xs = this.xs.slice(this.max / 2);
    this.xs.push(ms);
  }
  percentile(p: number): number | undefined {
    if (this.xs.length === 0) return undefined;
    const s = [...this.xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  }
}

/**
 * Who spent a BAPI request: webhook jobs, re-fetches at expiry, reconciliation re-fetches
 * queued as jobs or made by the run, organization jobs, derived-field refreshes,
 * organization batches (bulk changes), the backfill, read-through lookups.
 */
export const BAPI_CALLERS = ['webhook', 'expiry', 'reconcile', 'organization', 'derived', 'batch', 'backfill', 'lookup'] as const;
export type BapiCallerName = (typeof BAPI_CALLERS)[number];

/**
 * In-process counters of the pipeline, read by the demo's summary and the metrics endpoint.
 * Kept free of any metrics library so every part can record without knowing who reads.
 */
export class PipelineStats {
  readonly webhooks = new Map<string, number>(); // `${outcome}:${type}` → count
  readonly jobs = { completed: 0, retried: 0, failed: 0, rateLimited: 0, skipped: 0, deferred: 0 };
  /** Organization batches: list pages fetched, and invitations they published. */
  readonly batches = { pages: 0, published: 0 };
  /** Outcomes of the worker's publishes into the shared state. */
  readonly writes = { inserted: 0, updated: 0, unchanged: 0, stale: 0, tombstoned: 0 };
  /** Fetches that answered an older state than the webhook announced: fetched again, or published as they were once the wait was over. */
  readonly staleReads = { retried: 0, settled: 0 };
  /**
   * Signed events whose claims the pipeline did not take (a Clerk bug or a leaked signing
   * secret): an `updated_at` beyond our clock plus MAX_EVENT_CLOCK_SKEW_MS, taken as no version
   * (the receiver); a 404 under the organization an event named while the shared state holds
   * the invitation under another, not tombstoned (the worker).
   */
  readonly suspectEvents = { futureUpdatedAt: 0, otherOrganization: 0 };
  /** Changes this process's replica applied. */
  readonly replica = { applied: 0 };
  /**
   * Writes of this process's replica to its SQLite file that failed and are retried (the
   * position does not move past them), by SQLite's primary code: SQLITE_FULL, SQLITE_IOERR,
   * SQLITE_BUSY, SQLITE_READONLY, SQLITE_CORRUPT…
   */
  readonly replicaWriteFailures = new Map<string, number>();
  /** Times this process's replica opened its file again because it was `deleted` or `replaced` under it. */
  readonly replicaFileReopens = new Map<string, number>();
  /** BAPI requests by `caller|status` (status: the HTTP status or error kind). */
  readonly bapi = new Map<string, number>();
  /** Read API answers by `route|status`. */
  readonly reads = new Map<string, number>();
  /** Drift the reconciliations of this process found and repaired, by `kind|found` and `kind|repaired`. */
  readonly drift = new Map<string, number>();
  private readonly lags: Samples;
  private readonly replicaLags: Samples;
  private readonly observers: StatsObserver[] = [];

  constructor({ maxLagSamples = 100_000 } = {}) {
    this.lags = new Samples(maxLagSamples);
    this.replicaLags = new Samples(maxLagSamples);
  }

  /** Adds an observer of timings; returns a function that removes it. */
  observe(observer: StatsObserver): () => void {
    this.observers.push(observer);
    return () => {
      const i = this.observers.indexOf(observer);
      if (i >= 0) this.observers.splice(i, 1);
    };
  }

  enqueued(ms: number): void {
    for (const o of this.observers) o.enqueue?.(ms);
  }

  rateLimitWait(ms: number): void {
    this.jobs.rateLimited++;
    for (const o of this.observers) o.rateLimitWait?.(ms);
  }

  webhook(outcome: string, type: string): void {
    const key = `${outcome}:${type}`;
    this.webhooks.set(key, (this.webhooks.get(key) ?? 0) + 1);
  }

  webhooksWith(outcome: string): number {
    let n = 0;
    for (const [k, v] of this.webhooks) if (k.startsWith(`${outcome}:`)) n += v;
    return n;
  }

  /**
   * Set while BAPI's latest answer to this process was 401 or 403 (the key is wrong or
   * revoked), cleared by the next 200: `/readyz` fails meanwhile.
   */
  credentialsRefused: { status: number; at: number } | undefined;

  bapiCall(caller: BapiCallerName, result: string, ms?: number): void {
    if (result === '401' || result === '403') this.credentialsRefused = { status: Number(result), at: Date.now() };
    else if (result === '200') this.credentialsRefused = undefined;
    const key = `${caller}|${result}`;
    this.bapi.set(key, (this.bapi.get(key) ?? 0) + 1);
    if (ms !== undefined) for (const o of this.observers) o.bapi?.(ms, result);
  }

  /** BAPI requests made, of one caller or status (or all). */
  bapiCalls({ caller, status }: { caller?: BapiCallerName; status?: string } = {}): number {
    let n = 0;
    for (const [k, v] of this.bapi) {
      const [c, s] = k.split('|') as [string, string];
      if ((caller === undefined || c === caller) && (status === undefined || s === status)) n += v;
    }
    return n;
  }

  readAnswered(route: ReadRoute, status: number, ms: number): void {
    const key = `${route}|${status}`;
    this.reads.set(key, (this.reads.get(key) ?? 0) + 1);
    for (const o of this.observers) o.read?.(route, ms);
  }

  /** Adds a finished reconciliation's drift tally. */
  driftFound(drift: Record<string, { found: number; repaired: number }>): void {
    for (const [kind, { found, repaired }] of Object.entries(drift)) {
      this.drift.set(`${kind}|found`, (this.drift.get(`${kind}|found`) ?? 0) + found);
      this.drift.set(`${kind}|repaired`, (this.drift.get(`${kind}|repaired`) ?? 0) + repaired);
    }
  }

  lag(ms: number): void {
    this.lags.add(ms);
    for (const o of this.observers) o.lag?.(ms);
  }

  lagPercentile(p: number): number | undefined {
    return this.lags.percentile(p);
  }

  replicaApplied(n: number, lagsMs: readonly number[]): void {
    this.replica.applied += n;
    for (const ms of lagsMs) {
      this.replicaLags.add(ms);
      for (const o of this.observers) o.replicaLag?.(ms);
    }
  }

  replicaWriteFailed(code: string): void {
    this.replicaWriteFailures.set(code, (this.replicaWriteFailures.get(code) ?? 0) + 1);
  }

  replicaFileReopened(change: string): void {
    this.replicaFileReopens.set(change, (this.replicaFileReopens.get(change) ?? 0) + 1);
  }

  replicaLagPercentile(p: number): number | undefined {
    return this.replicaLags.percentile(p);
  }
}
