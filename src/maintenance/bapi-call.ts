import { setTimeout as sleep } from 'node:timers/promises';
import { BapiRateLimitedError, classifyError, statusOf } from '../clerk/bapi-errors.ts';
import type { Logger } from '../logger.ts';
import type { BapiCallerName, PipelineStats } from '../stats.ts';
import { jitteredBackoff } from '../worker/backoff.ts';
import type { SharedRateLimiter } from './rate-limiter.ts';

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
}

/**
 * Runs BAPI calls under the shared budget: one token per request, a 429 blocks the budget
 * for everyone for `Retry-After` and the call waits it out, transient failures retry with
 * capped jittered backoff. 404s and fatal errors go to the caller at once.
 */
export class BapiCaller {
  readonly counters: CallCounters = { requests: 0, rateLimited: 0, retried: 0 };
  private readonly backoff;

  constructor(private readonly opts: BapiCallerOptions) {
    this.backoff = jitteredBackoff(opts.backoff ?? { baseMs: 500, capMs: 30_000 });
  }

  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const now = this.opts.now ?? Date.now;
    const giveUpAt = now() + (this.opts.retryForMs ?? 600_000);
    let failures = 0;
    for (;;) {
      await this.opts.limiter.acquire(this.opts.signal);
      this.counters.requests++;
      const startedAt = performance.now();
      try {
        const answer = await fn();
        this.count('200', startedAt);
        return answer;
      } catch (err) {
        const kind = classifyError(err);
        this.count(statusOf(err), startedAt);
        if (kind === 'rate_limited') {
          const waitMs = err instanceof BapiRateLimitedError ? err.retryAfterMs : 1000;
          this.counters.rateLimited++;
          this.opts.log.warn({ waitMs, what }, 'BAPI answered 429: pausing every BAPI caller of this instance');
          await this.opts.limiter.block(waitMs);
          continue;
        }
        if (kind !== 'retryable') throw err;
        failures++;
        const delay = this.backoff(failures);
        if (now() + delay > giveUpAt) throw err;
        this.counters.retried++;
        this.opts.log.warn({ what, attempt: failures, delayMs: delay, err: (err as Error).message }, 'BAPI call failed; will retry');
        await sleep(delay, undefined, { signal: this.opts.signal });
      }
    }
  }

  private count(status: string, startedAt: number): void {
    this.opts.stats?.stats.bapiCall(this.opts.stats.caller, status, performance.now() - startedAt);
  }
}
