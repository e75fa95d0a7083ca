import { describe, expect, it } from 'vitest';
import { Watermark } from './lister.ts';

describe('Watermark (the backfill cursor over pages finished in any order)', () => {
  it('moves with each unit finished in order, returning the next unit not yet done', () => {
    const w = new Watermark(0);
    expect([0, 1, 2].map((u) => w.complete(u))).toEqual([1, 2, 3]);
  });

  it('does not move while a lower unit is in flight, then jumps past every unit finished meanwhile', () => {
    const w = new Watermark(0);
    expect(w.complete(2)).toBeUndefined();
    expect(w.complete(1)).toBeUndefined();
    expect(w.complete(4)).toBeUndefined();
    // 0 done: 1 and 2 were already, 3 is not.
    expect(w.complete(0)).toBe(3);
    expect(w.complete(3)).toBe(5);
  });

  it('starts from the given low mark (a resumed run)', () => {
    const w = new Watermark(7);
    expect(w.complete(8)).toBeUndefined();
    expect(w.complete(7)).toBe(9);
  });

  it('ignores a unit finished twice and units below the mark', () => {
    const w = new Watermark(0);
    expect(w.complete(0)).toBe(1);
    expect(w.complete(0)).toBeUndefined();
    expect(w.complete(2)).toBeUndefined();
    expect(w.complete(2)).toBeUndefined();
    expect(w.complete(1)).toBe(3);
  });

  it('over a shuffled run of 200 units, moves only to the lowest unfinished unit and ends past the last', () => {
    const order = Array.from({ length: 200 }, (_, i) => i);
    // A fixed shuffle (seeded), so a failure repeats.
    let x = 42;
    for (let i = order.length - 1; i > 0; i--) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const j = x % (i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const w = new Watermark(0);
    const done = new Set<number>();
    let mark = 0;
    for (const unit of order) {
      done.add(unit);
      const moved = w.complete(unit);
      let lowest = 0;
      while (done.has(lowest)) lowest++;
      if (moved === undefined) expect(lowest).toBe(mark);
      else {
        expect(moved).toBe(lowest);
        expect(moved).toBeGreaterThan(mark);
        mark = moved;
      }
    }
    expect(mark).toBe(200);
  });
});
