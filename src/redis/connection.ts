import { Redis, type RedisOptions } from 'ioredis';
import { settledWithin } from '../lifecycle/time-limit.ts';

export type { Redis } from 'ioredis';

export interface RedisConnectOptions {
  /**
   * Connections that only enqueue must fail fast when Redis is down (the receiver answers
   * 503 and Svix retries) instead of buffering commands no one will wait for.
   * @defaultValue false
   */
  failFast?: boolean;
}

/** An ioredis connection fit for BullMQ. */
export function connectRedis(url: string, { failFast = false }: RedisConnectOptions = {}): Redis {
  const options: RedisOptions = {
    // BullMQ's blocking commands must not be cut off by a per-request retry limit.
    maxRetriesPerRequest: failFast ? 1 : null,
    enableOfflineQueue: !failFast,
    // Keep reconnecting for as long as the process lives; back off to 2 s between tries.
    retryStrategy: (times) => Math.min(100 * times, 2000),
    connectionName: 'clerk-invitation-mirror',
    lazyConnect: false,
  };
  return new Redis(url, options);
}

/** QUITs `redis` (sending what it still has queued), or drops it when Redis does not answer within `timeoutMs`. */
export async function closeRedis(redis: Redis, timeoutMs = 1000): Promise<void> {
  if (redis.status !== 'ready') {
    redis.disconnect();
    return;
  }
  await settledWithin(redis.quit(), timeoutMs);
  redis.disconnect();
}

/**
 * Runs `fn` on a connection of its own that never retries or queues (a start-up check, a
 * look at a server we may not own), and always disconnects it. Rejects when `url` does not
 * answer within `connectTimeoutMs`.
 */
export async function withOneShotRedis<T>(url: string, fn: (redis: Redis) => Promise<T>, { connectTimeoutMs = 5000 } = {}): Promise<T> {
  const r = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: connectTimeoutMs });
  r.on('error', () => {});
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}
