import { describe, expect, it } from 'vitest';
import { jitteredBackoff } from './backoff.ts';

/** A random() that returns `values` in turn. */
const seq = (...values: number[]) => {
  let i = 0;
  return () => values[i++ % values.length]!;
};

describe('jitteredBackoff', () => {
  it('doubles from baseMs, attempt 1 being one base step: equal jitter puts each delay in [step/2, step]', () => {
    const low = jitteredBackoff({ baseMs: 1000, capMs: 1_000_000 }, () => 0);
    const high = jitteredBackoff({ baseMs: 1000, capMs: 1_000_000 }, () => 1);
    expect([1, 2, 3, 4, 5].map(low)).toEqual([500, 1000, 2000, 4000, 8000]);
    expect([1, 2, 3, 4, 5].map(high)).toEqual([1000, 2000, 4000, 8000, 16_000]);
  });

  it('half the step is fixed, half scales with random()', () => {
    const backoff = jitteredBackoff({ baseMs: 1000, capMs: 1_000_000 }, seq(0.25, 0.5, 0.75));
    // Attempt 3: a step of 4000, so 2000 + random × 2000.
    expect([backoff(3), backoff(3), backoff(3)]).toEqual([2500, 3000, 3500]);
  });

  it('attempt 0 (and below) waits as attempt 1 does', () => {
    const backoff = jitteredBackoff({ baseMs: 200, capMs: 10_000 }, () => 1);
    expect([backoff(-3), backoff(0), backoff(1)]).toEqual([200, 200, 200]);
  });

  it('never exceeds capMs, nor goes below capMs/2 once the step is capped, however many attempts', () => {
    const high = jitteredBackoff({ baseMs: 1000, capMs: 30_000 }, () => 1);
    const low = jitteredBackoff({ baseMs: 1000, capMs: 30_000 }, () => 0);
    // 2^5 × 1000 = 32 s > 30 s: capped from attempt 6 on; 2000 attempts would overflow to Infinity uncapped.
    expect([5, 6, 7, 50, 2000].map(high)).toEqual([16_000, 30_000, 30_000, 30_000, 30_000]);
    expect([5, 6, 7, 50, 2000].map(low)).toEqual([8000, 15_000, 15_000, 15_000, 15_000]);
  });

  it('stays within the equal-jitter bounds for a seeded run of random values', () => {
    // A small LCG: the same values every run, spread over [0, 1).
    let x = 12345;
    const lcg = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const backoff = jitteredBackoff({ baseMs: 100, capMs: 5000 }, lcg);
    const seen = new Set<number>();
    for (let attempt = 1; attempt <= 12; attempt++) {
      const step = Math.min(5000, 100 * 2 ** (attempt - 1));
      for (let i = 0; i < 50; i++) {
        const d = backoff(attempt);
        expect(d).toBeGreaterThanOrEqual(step / 2);
        expect(d).toBeLessThanOrEqual(step);
        expect(Number.isInteger(d)).toBe(true);
        seen.add(d);
      }
    }
    // Jitter, not a constant: retries after one outage spread out.
    expect(seen.size).toBeGreaterThan(100);
  });

  it('defaults to a 1 s base and a 5 min cap', () => {
    const high = jitteredBackoff(undefined, () => 1);
    expect(high(1)).toBe(1000);
    expect(high(30)).toBe(300_000);
  });
});
