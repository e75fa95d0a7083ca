import { setTimeout as sleep } from 'node:timers/promises';
import { QueueKeys } from 'bullmq';
import { SYNC_QUEUE } from '../queue/names.ts';
import { BapiRateLimitedError } from './errors.ts';
import type { MirrorKeys } from '../state/keys.ts';
import type { Redis } from '../redis/connection.ts';
import { scriptCommand } from '../state/scripts.ts';

const acquire = scriptCommand('budget-acquire');
const block = scriptCommand('budget-block');
const refund = scriptCommand('budget-refund');

export interface SharedRateLimiterOptions {
  /** Any connection to the queue's Redis (non-blocking commands only). */
  connection: Redis;
  keys: MirrorKeys;
  /** The worker's limit (config.clerk.rateLimit). */
  rateLimit: { max: number; windowMs: number };
  /** Called with every wait, for stats. */
  onWait?: (ms: number) => void;
  /**
   * A budget of its own under this key instead of the worker limiter's (a cap on one kind of
   * caller, spent on top of the shared budget).
   */
  key?: string;
}

/** A 429's wait when it names none (Clerk always sends `Retry-After`; a proxy in between may not). */
const DEFAULT_RATE_LIMIT_WAIT_MS = 1000;

/** How long a 429 blocks the budget: its `Retry-After`. */
export function rateLimitWaitMs(err: unknown): number {
  return err instanceof BapiRateLimitedError ? err.retryAfterMs : DEFAULT_RATE_LIMIT_WAIT_MS;
}

/**
 * The BAPI budget shared by the sync worker, backfill and reconciliation, in every process:
 * BullMQ's own limiter key of the sync queue, spent one request at a time by the lists
 * (Redis-side, atomic), and by the worker one job at a time. A 429 seen by anyone blocks it
 * for everyone until `Retry-After`.
 */
export class SharedRateLimiter {
  readonly limiterKey: string;
  readonly metaKey: string;

  constructor(private readonly opts: SharedRateLimiterOptions) {
    const keys = new QueueKeys(opts.keys.queuePrefix).getKeys(SYNC_QUEUE);
    this.limiterKey = opts.key ?? keys.limiter!;
    this.metaKey = opts.key ? `${opts.key}:meta` : keys.meta!;
  }

  /** One try: 0 when a request was taken, else the ms until one is free. */
  private async attempt(): Promise<number> {
    return Number(await acquire(this.opts.connection, [this.limiterKey, this.metaKey], [this.opts.rateLimit.max, this.opts.rateLimit.windowMs]));
  }

  /** Takes one request if one is free now, without waiting. */
  async tryAcquire(): Promise<boolean> {
    return (await this.attempt()) <= 0;
  }

  /** Resolves once one request may be sent; rejects with the signal's reason when aborted. */
  async acquire(signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const wait = await this.attempt();
      if (wait <= 0) return;
      this.opts.onWait?.(wait);
      // A little past the window's end: the first request of the next window must not reach
      // Clerk while Clerk's window (opened by our first request, a bit later) still runs.
      await sleep(wait + 5, undefined, { signal });
    }
  }

  /**
   * After a 429: nobody on this Clerk instance sends anything for `ms`. The one place a 429
   * pauses anything: the key is the sync queue's limiter, so BullMQ's workers wait too.
   */
  async block(ms: number): Promise<void> {
    await block(this.opts.connection, [this.limiterKey], [Math.max(1, Math.round(ms))]);
  }

  /**
   * Where the budget stands: requests spent in the current window (every caller of this
   * Clerk instance through the mirror), the limit, and whether a 429 blocks it.
   */
  async usage(): Promise<{ spent: number; max: number; blocked: boolean }> {
    const [count, meta] = await Promise.all([this.opts.connection.get(this.limiterKey), this.opts.connection.hget(this.metaKey, 'max')]);
    const max = Number(meta ?? this.opts.rateLimit.max);
    const n = Number(count ?? 0);
    const blocked = n >= Number.MAX_SAFE_INTEGER;
    return { spent: blocked ? max : Math.min(n, max), max, blocked };
  }

  /** Returns the token, taken at `takenAt` (ms), of a job that sent no request (state/scripts/budget-refund.lua); says whether it did. */
  async refund(takenAt: number): Promise<boolean> {
    return Number(await refund(this.opts.connection, [this.limiterKey, this.metaKey], [this.opts.rateLimit.windowMs, takenAt])) === 1;
  }
}
