import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.ts';
import { BudgetWatch } from '../src/bapi/budget-watch.ts';
import { SharedRateLimiter } from '../src/bapi/rate-limiter.ts';
import { isolatedKeys, testRedis } from './helpers/state.ts';

const redis = testRedis();
afterAll(() => redis.quit());

function limiter(name: string, max = 3) {
  return new SharedRateLimiter({ connection: redis, keys: isolatedKeys(name), rateLimit: { max, windowMs: 60_000 } });
}

describe('the shared BAPI budget', () => {
  it('gives back the token of a job that sent nothing, never to zero, never through a 429 block, never into a later window', async () => {
    const l = limiter('refund');
    const takenAt = Date.now();
    await l.acquire();
    await l.acquire();
    expect(await l.usage()).toEqual({ spent: 2, max: 3, blocked: false });
    expect(await l.refund(takenAt)).toBe(true);
    // Never to 0, which would open a new window with the next request.
    expect(await l.refund(takenAt)).toBe(false);
    expect((await l.usage()).spent).toBe(1);
    // A token taken before this window began belongs to an earlier one.
    await l.acquire();
    expect(await l.refund(Date.now() - 120_000)).toBe(false);
    expect((await l.usage()).spent).toBe(2);
    await l.block(60_000);
    expect(await l.refund(Date.now())).toBe(false);
    expect(await l.usage()).toEqual({ spent: 3, max: 3, blocked: true });
  });

  it('warns once the whole share has stayed spent for over a minute, and starts counting again after a break', async () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'warn', destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
    let t = 0;
    const l = limiter('watch');
    const watch = new BudgetWatch({ limiter: l, log, now: () => t });
    for (let i = 0; i < 3; i++) await l.acquire();
    await watch.check();
    t = 59_000;
    await watch.check();
    expect(watch.last).toMatchObject({ spent: 3, max: 3, spentForMs: 59_000 });
    expect(lines).toEqual([]);
    t = 61_000;
    await watch.check();
    expect(lines.join('')).toMatch(/spent its whole BAPI share for over a minute/);
    // A window with room left breaks the streak.
    await l.refund(Date.now());
    t = 62_000;
    await watch.check();
    expect(watch.last).toMatchObject({ spent: 2, spentForMs: 0 });
  });
});
