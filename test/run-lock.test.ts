// withRunLock against the run's real Redis (it is a SET NX PX plus two scripts, so not a pure unit).
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { RunLockedError, withRunLock } from '../src/maintenance/run-lock.ts';
import { isolatedKeys, testRedis } from './helpers/state.ts';

const redis = testRedis();
const other = testRedis();
afterAll(async () => {
  await redis.quit();
  await other.quit();
});

describe('withRunLock', () => {
  it('holds the lock key while fn runs, returns what fn returns, and deletes the key after', async () => {
    const keys = isolatedKeys('run-lock');
    const seen = await withRunLock(redis, keys, 'backfill', async () => {
      const token = await other.get(keys.lock('backfill'));
      const ttl = await other.pttl(keys.lock('backfill'));
      return { token, ttl };
    });
    expect(seen.token).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen.ttl).toBeGreaterThan(50_000);
    expect(seen.ttl).toBeLessThanOrEqual(60_000);
    expect(await other.exists(keys.lock('backfill'))).toBe(0);
  });

  it('refuses a second run of the same kind while the first holds it, naming the key; another kind runs', async () => {
    const keys = isolatedKeys('run-lock');
    let release!: () => void;
    const first = withRunLock(redis, keys, 'reconcile', () => new Promise<string>((r) => (release = () => r('first'))));
    await sleep(50);
    const second = withRunLock(other, keys, 'reconcile', async () => 'second');
    await expect(second).rejects.toBeInstanceOf(RunLockedError);
    await expect(second).rejects.toThrow(`another reconcile is running against this Clerk instance (lock ${keys.lock('reconcile')}; it expires 60 s after its holder dies)`);
    expect(await withRunLock(other, keys, 'backfill', async () => 'backfill ran')).toBe('backfill ran');
    release();
    expect(await first).toBe('first');
    // Released: the next run takes it.
    expect(await withRunLock(other, keys, 'reconcile', async () => 'after')).toBe('after');
  });

  it('is per key prefix: two mirrors sharing one Redis do not block each other', async () => {
    const a = isolatedKeys('run-lock-a');
    const b = isolatedKeys('run-lock-b');
    const both = await withRunLock(redis, a, 'backfill', () => withRunLock(other, b, 'backfill', async () => 'both'));
    expect(both).toBe('both');
  });

  it('releases the lock when fn throws, and passes the error on', async () => {
    const keys = isolatedKeys('run-lock');
    await expect(withRunLock(redis, keys, 'backfill', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await other.exists(keys.lock('backfill'))).toBe(0);
  });

  it('renews the lock while fn runs, so a run longer than the ttl keeps it', async () => {
    const keys = isolatedKeys('run-lock');
    const ttlMs = 1000;
    const during = await withRunLock(
      redis,
      keys,
      'backfill',
      async () => {
        // Two and a half ttls: without renewal the key would be gone after the first.
        await sleep(ttlMs * 2.5);
        return other.exists(keys.lock('backfill'));
      },
      ttlMs,
    );
    expect(during).toBe(1);
    expect(await other.exists(keys.lock('backfill'))).toBe(0);
  });

  it('expires after its holder stops renewing, and does not delete a lock another run took since', async () => {
    const keys = isolatedKeys('run-lock');
    const key = keys.lock('reconcile');
    // A dead holder's lock: set as withRunLock sets it, never renewed.
    await other.set(key, 'dead-holder', 'PX', 300, 'NX');
    await expect(withRunLock(redis, keys, 'reconcile', async () => 'early', 300)).rejects.toBeInstanceOf(RunLockedError);
    await sleep(400);
    expect(await withRunLock(redis, keys, 'reconcile', async () => 'taken over', 300)).toBe('taken over');
    // A run whose lock expired and was taken by another leaves the other's lock alone.
    await withRunLock(redis, keys, 'reconcile', async () => {
      await other.set(key, 'someone-else', 'PX', 10_000);
    });
    expect(await other.get(key)).toBe('someone-else');
    await other.del(key);
  });
});
