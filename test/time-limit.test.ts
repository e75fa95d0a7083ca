import { describe, expect, it } from 'vitest';
import { settledWithin, TimeoutError, withTimeout } from '../src/lifecycle/time-limit.ts';

const later = <T>(ms: number, value: T) => new Promise<T>((r) => setTimeout(() => r(value), ms));
const never = new Promise<never>(() => {});

describe('withTimeout', () => {
  it('passes on the answer, or the rejection, that comes first', async () => {
    expect(await withTimeout(later(1, 'yes'), 1000)).toBe('yes');
    await expect(withTimeout(Promise.reject(new Error('no')), 1000)).rejects.toThrow('no');
  });

  it('rejects with a TimeoutError naming the wait, or with the error asked for', async () => {
    const err = await withTimeout(never, 5).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toBe('no answer within 5 ms');
    await expect(withTimeout(never, 5, () => new RangeError('custom'))).rejects.toThrow(RangeError);
  });
});

describe('settledWithin', () => {
  it('tells whether the promise settled in time, a rejection counting as settled, and never rejects', async () => {
    expect(await settledWithin(later(1, 0), 1000)).toBe(true);
    expect(await settledWithin(Promise.reject(new Error('x')), 1000)).toBe(true);
    expect(await settledWithin(never, 5)).toBe(false);
  });
});
