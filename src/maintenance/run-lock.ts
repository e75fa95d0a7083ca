import { randomUUID } from 'node:crypto';
import type { Redis } from '../redis/connection.ts';
import type { MirrorKeys } from '../state/keys.ts';

import { scriptCommand } from '../state/scripts.ts';

const renew = scriptCommand('run-lock-renew');
const release = scriptCommand('run-lock-release');

/** Thrown when another process runs the same maintenance (a backfill, a reconciliation) against this Clerk instance. */
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
  const timer = setInterval(() => void renew(redis, [key], [token, ttlMs]).catch(() => {}), Math.floor(ttlMs / 3));
  try {
    return await fn();
  } finally {
    clearInterval(timer);
    await release(redis, [key], [token]).catch(() => {});
  }
}
