import { setTimeout as sleep } from 'node:timers/promises';
import { QueueKeys } from 'bullmq';
import { SYNC_QUEUE } from '../queue/names.ts';
import type { MirrorKeys } from '../state/keys.ts';
import type { Redis } from '../redis/connection.ts';

/**
 * Takes one request from the budget the sync worker's BullMQ limiter spends, or says how
 * long until one is free. Same fixed-window scheme as BullMQ's `prepareJobForProcessing` and
 * `getRateLimitTTL` scripts, on the same key: INCR per request, PEXPIRE the window on the
 * first, refuse while the count is at `max` and the key lives. `max`/`duration` in the
 * queue's meta hash (Queue#setGlobalRateLimit) win over ours, as they do for the worker.
 * A key left without a TTL (never by BullMQ, but by a manual SET) gets one so it cannot
 * block forever.
 *
 * KEYS[1] limiter key, KEYS[2] meta key; ARGV[1] max, ARGV[2] window ms.
 * Returns 0 when granted, else the ms to wait.
 */
const ACQUIRE = `
local meta = redis.call('HMGET', KEYS[2], 'max', 'duration')
local max = tonumber(meta[1] or ARGV[1])
local duration = math.floor(math.abs(tonumber(meta[2] or ARGV[2])))
local count = tonumber(redis.call('GET', KEYS[1]) or 0)
if count >= max then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then return ttl end
  if ttl == -1 then
    redis.call('PEXPIRE', KEYS[1], duration)
    return duration
  end
  count = 0
end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], duration) end
return 0
`;

/**
 * Blocks the budget for `ms` (as Queue#rateLimit does: count = MAX_SAFE_INTEGER) unless a
 * longer block is already in place, so two clients seeing 429s never shorten each other's.
 */
const BLOCK = `
local ttl = redis.call('PTTL', KEYS[1])
local count = tonumber(redis.call('GET', KEYS[1]) or 0)
if count >= 9007199254740991 and ttl >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], '9007199254740991', 'PX', ARGV[1])
return 1
`;

/**
 * Gives back one request of the window in which it was taken: a sync job that made no BAPI
 * call (the state was held already, or it waits for a batch) took the worker limiter's token
 * for nothing. Not when the budget is blocked (a 429) or down to one, and not once the window the
 * token came from has ended: a refund then would hand out one of the next window's requests.
 *
 * KEYS[1] limiter key, KEYS[2] meta key; ARGV[1] window ms, ARGV[2] when the token was taken (ms).
 */
const REFUND = `
local count = tonumber(redis.call('GET', KEYS[1]) or 0)
-- Never to 0: the next request would then open a new window (PEXPIRE on the first), and the
-- window start the check below relies on would move under the tokens already taken.
if count <= 1 or count >= 9007199254740991 then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
local duration = math.floor(math.abs(tonumber(redis.call('HGET', KEYS[2], 'duration') or ARGV[1])))
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
-- The window began with its first token; allow for the hosts' clocks and PTTL's rounding.
if tonumber(ARGV[2]) < now - (duration - ttl) - 25 then return 0 end
redis.call('DECR', KEYS[1])
return 1
`;

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

/**
 * The BAPI budget shared by the sync worker, backfill and reconciliation, in every process:
 * BullMQ's own limiter key of the sync queue, spent one request at a time by the lists
 * (Redis-side, atomic), and by the worker one job at a time. A 429 seen by anyone blocks it
 * for everyone until `Retry-After`.
 */
export class SharedRateLimiter {
  readonly limiterKey: string;
  readonly metaKey: string;
  private waitedMs = 0;
  private waits = 0;

  constructor(private readonly opts: SharedRateLimiterOptions) {
    const keys = new QueueKeys(opts.keys.queuePrefix).getKeys(SYNC_QUEUE);
    this.limiterKey = opts.key ?? keys.limiter!;
    this.metaKey = opts.key ? `${opts.key}:meta` : keys.meta!;
  }

  /** One try: 0 when a request was taken, else the ms until one is free. */
  private async attempt(): Promise<number> {
    return Number(await this.opts.connection.eval(ACQUIRE, 2, this.limiterKey, this.metaKey, this.opts.rateLimit.max, this.opts.rateLimit.windowMs));
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
      this.waits++;
      this.waitedMs += wait;
      this.opts.onWait?.(wait);
      // A little past the window's end: the first request of the next window must not reach
      // Clerk while Clerk's window (opened by our first request, a bit later) still runs.
      await sleep(wait + 5, undefined, { signal });
    }
  }

  /** After a 429: nobody on this Clerk instance sends anything for `ms`. */
  async block(ms: number): Promise<void> {
    await this.opts.connection.eval(BLOCK, 1, this.limiterKey, Math.max(1, Math.round(ms)));
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

  /** Returns the token, taken at `takenAt` (ms), of a job that sent no request (see REFUND); says whether it did. */
  async refund(takenAt: number): Promise<boolean> {
    return Number(await this.opts.connection.eval(REFUND, 2, this.limiterKey, this.metaKey, this.opts.rateLimit.windowMs, takenAt)) === 1;
  }

  stats(): { waits: number; waitedMs: number } {
    return { waits: this.waits, waitedMs: this.waitedMs };
  }
}
