// A terminal and a clock for tests of the progress display (src/maintenance/progress.ts).
import type { ProgressClock } from '../../src/maintenance/progress.ts';

/**
 * What a terminal shows after the bytes written to it: `\r`, `\n`, erase line (`ESC[2K`) and
 * erase to its end (`ESC[K`) are all the bar uses; anything else is text.
 */
const ESC = String.fromCharCode(27);

export class Screen {
  lines: string[] = [''];
  private row = 0;
  private col = 0;
  writes = 0;
  constructor(readonly columns = 120) {}

  write(chunk: string): boolean {
    this.writes++;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (c === '\r') this.col = 0;
      else if (c === '\n') {
        this.row++;
        this.col = 0;
        this.lines[this.row] ??= '';
      } else if (c === '\x1b') {
        const m = new RegExp(`^${ESC}\\[(\\d*)K`).exec(chunk.slice(i));
        if (!m) throw new Error(`unexpected escape ${JSON.stringify(chunk.slice(i, i + 6))}`);
        this.lines[this.row] = m[1] === '2' ? '' : this.lines[this.row]!.slice(0, this.col);
        i += m[0].length - 1;
      } else {
        const l = this.lines[this.row]!.padEnd(this.col);
        this.lines[this.row] = l.slice(0, this.col) + c + l.slice(this.col + 1);
        this.col++;
      }
    }
    return true;
  }

  /** The line the cursor is on. */
  get current(): string {
    return this.lines[this.row]!;
  }

  /** Every line with text on it. */
  text(): string[] {
    return this.lines.filter((l) => l !== '');
  }
}

/** A clock that moves only when told to, with the interval timers it was asked for. */
export function fakeClock(start = 1_700_000_000_000) {
  let t = start;
  const timers = new Map<number, { fn: () => void; ms: number; next: number }>();
  let ids = 0;
  const clock: ProgressClock = {
    now: () => t,
    setInterval(fn, ms) {
      timers.set(++ids, { fn, ms, next: t + ms });
      return ids;
    },
    clearInterval: (h) => void timers.delete(h as number),
  };
  return {
    clock,
    timers,
    /** Moves the time on by `ms`, firing every timer that falls due on the way. */
    advance(ms: number) {
      const end = t + ms;
      for (;;) {
        const due = [...timers.values()].filter((x) => x.next <= end).sort((a, b) => a.next - b.next)[0];
        if (!due) break;
        t = due.next;
        due.next += due.ms;
        due.fn();
      }
      t = end;
    },
  };
}
