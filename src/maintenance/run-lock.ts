import { randomUUID } from 'node:crypto';
import type { Redis } from '../redis/connection.ts';
import type { MirrorKeys } from '../state/keys.ts';

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;

/** Thrown when another process runs the same kind of sync against this Clerk instance. */
export class RunLockedError extends Error {
  override name = 'RunLockedError';
}

/**
 * One backfill and one reconciliation at a time per Redis (i.e. per Clerk instance), across
 * the `backfill`/`reconcile` commands and the scheduled jobs of every host. The lock expires
 * `ttlMs` after its holder dies, and is renewed while it lives.
 */
export async function withRunLock<T>(redis: Redis, keys: MirrorKeys, kind: 'backfill' | 'reconcile', fn: () => Promise<T>, ttlMs = 60_000): Promise<T> {
  const key = keys.lock(kind);
  const token = randomUUID();
  if ((await redis.set(key, token, 'PX', ttlMs, 'NX')) !== 'OK') {
    throw new RunLockedError(`another ${kind} is running against this Clerk instance (lock ${key}; it expires ${Math.round(ttlMs / 1000)} s after its holder dies)`);
  }
  const timer = setInterval(() => void redis.eval(RENEW, 1, key, token, ttlMs).catch(() => {}), Math.floor(ttlMs / 3));
  try {
    return await fn();
  } finally {
    clearInterval(timer);
    await redis.eval(RELEASE, 1, key, token).catch(() => {});
  }
}
