import { setTimeout as sleep } from 'node:timers/promises';
import { classifyError, statusOf } from './errors.ts';
import type { Logger } from '../logger.ts';
import type { BapiCallerName, PipelineStats } from '../stats.ts';
import { jitteredBackoff } from './backoff.ts';
import type { ProgressWait } from '../maintenance/progress.ts';
import { rateLimitWaitMs, type SharedRateLimiter } from './rate-limiter.ts';

/** A wait for the budget shorter than this is not worth showing. */
const WAIT_NOTICE_MS = 200;

/** What the calls of one run cost, for its summary. */
export interface CallCounters {
  requests: number;
  rateLimited: number;
  retried: number;
}

export interface BapiCallerOptions {
  limiter: SharedRateLimiter;
  /** Where each request is counted (`/metrics`), and as whose. */
  stats?: { stats: PipelineStats; caller: BapiCallerName };
  log: Logger;
  signal?: AbortSignal;
  /**
   * How long one call keeps retrying transient failures (5xx, timeouts, network) before it
   * gives up; 429s wait for `Retry-After` and never count. The run then stops with its
   * cursor saved, and the next run (or the job's next attempt) resumes.
   * @defaultValue 600_000 (10 min)
   */
  retryForMs?: number;
  /** @defaultValue { baseMs: 500, capMs: 30_000 } */
  backoff?: { baseMs: number; capMs: number };
  now?: () => number;
  /**
   * Told what the calls wait for whenever that changes (a 429's Retry-After, the shared
   * budget, a retry's backoff), and undefined once none waits. With several calls waiting,
   * the one whose end is known and latest.
   */
  onWait?: (w: ProgressWait | undefined) => void;
  /** Told of every request sent. */
  onRequest?: () => void;
}

/**
 * Runs BAPI calls under the shared budget: one token per request, a 429 blocks the budget
 * for everyone for `Retry-After` and the call waits it out, transient failures retry with
 * capped jittered backoff. 404s and fatal errors go to the caller at once.
 */
export class BapiCaller {
  readonly counters: CallCounters = { requests: 0, rateLimited: 0, retried: 0 };
  private readonly backoff;
  /** The calls waiting now, by call. */
  private readonly waits = new Map<object, ProgressWait>();
  /** Until when a 429 this caller saw blocks the budget (our clock). */
  private blockedUntil = 0;

  constructor(private readonly opts: BapiCallerOptions) {
    this.backoff = jitteredBackoff(opts.backoff ?? { baseMs: 500, capMs: 30_000 });
  }

  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const now = this.opts.now ?? Date.now;
    const giveUpAt = now() + (this.opts.retryForMs ?? 600_000);
    let failures = 0;
    for (;;) {
      await this.acquire();
      this.counters.requests++;
      this.opts.onRequest?.();
      const startedAt = performance.now();
      try {
        const answer = await fn();
        this.count('200', startedAt);
        return answer;
      } catch (err) {
        const kind = classifyError(err);
        this.count(statusOf(err), startedAt);
        if (kind === 'rate_limited') {
          const waitMs = rateLimitWaitMs(err);
          this.counters.rateLimited++;
          this.opts.log.warn({ waitMs, what }, 'BAPI answered 429: pausing every BAPI caller of this instance');
          this.blockedUntil = Math.max(this.blockedUntil, now() + waitMs);
          await this.opts.limiter.block(waitMs);
          continue;
        }
        if (kind !== 'retryable') throw err;
        failures++;
        const delay = this.backoff(failures);
        if (now() + delay > giveUpAt) throw err;
        this.counters.retried++;
        this.opts.log.warn({ what, attempt: failures, delayMs: delay, err: (err as Error).message }, 'BAPI call failed; will retry');
        const token = {};
        this.setWait(token, { reason: `a retry of "${what}" (${statusOf(err)})`, since: now(), until: now() + delay });
        try {
          await sleep(delay, undefined, { signal: this.opts.signal });
        } finally {
          this.setWait(token, undefined);
        }
      }
    }
  }

  /**
   * One token of the shared budget. With `onWait`, a wait is reported: at once after a 429
   * this caller saw (its end is known), else once it lasts WAIT_NOTICE_MS, as Clerk's rate
   * limit when the budget is blocked (a 429 someone else saw) or as the budget spent.
   */
  private async acquire(): Promise<void> {
    const { limiter, signal, onWait } = this.opts;
    if (!onWait) return limiter.acquire(signal);
    const now = this.opts.now ?? Date.now;
    const token = {};
    const since = now();
    if (this.blockedUntil > since) this.setWait(token, { reason: "Clerk's rate limit", since, until: this.blockedUntil });
    let pending = true;
    const notice = setTimeout(() => {
      if (this.waits.has(token)) return;
      limiter.usage().then(
        (u) => pending && this.setWait(token, { reason: u.blocked ? "Clerk's rate limit" : 'the BAPI budget (BAPI_RATE_LIMIT)', since }),
        () => {},
      );
    }, WAIT_NOTICE_MS);
    try {
      await limiter.acquire(signal);
    } finally {
      pending = false;
      clearTimeout(notice);
      this.setWait(token, undefined);
    }
  }

  private setWait(token: object, w: ProgressWait | undefined): void {
    if (w) this.waits.set(token, w);
    else if (!this.waits.delete(token)) return;
    let current: ProgressWait | undefined;
    for (const x of this.waits.values()) {
      if (!current || (x.until ?? -1) > (current.until ?? -1)) current = x;
    }
    this.opts.onWait?.(current);
  }

  private count(status: string, startedAt: number): void {
    this.opts.stats?.stats.bapiCall(this.opts.stats.caller, status, performance.now() - startedAt);
  }
}

/**
 * A run's caller (backfill, reconciliation): its requests counted as `caller`'s, its waits and
 * requests shown by `progress`.
 */
export function runCaller(
  o: Pick<BapiCallerOptions, 'limiter' | 'log' | 'signal' | 'retryForMs'> & { now: () => number; stats?: PipelineStats },
  caller: BapiCallerName,
  progress: { wait(w: ProgressWait | undefined): void; request(): void },
): BapiCaller {
  return new BapiCaller({
    limiter: o.limiter,
    log: o.log,
    signal: o.signal,
    retryForMs: o.retryForMs,
    now: o.now,
    stats: o.stats && { stats: o.stats, caller },
    onWait: (w) => progress.wait(w),
    onRequest: () => progress.request(),
  });
}
