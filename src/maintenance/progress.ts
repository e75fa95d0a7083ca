import type { Logger } from '../logger.ts';
import type { ListProgress } from './lister.ts';

/** Receives list progress; `finish` ends the display. */
export interface ProgressReporter {
  update(p: ListProgress): void;
  finish(): void;
}

export const silentProgress: ProgressReporter = { update() {}, finish() {} };

/** Count, rate and ETA since the first update. */
export class ProgressMath {
  private first: { at: number; done: number } | undefined;
  constructor(private readonly now: () => number = Date.now) {}

  measure(p: ListProgress): { ratePerS: number; etaS: number | undefined; elapsedS: number } {
    const at = this.now();
    this.first ??= { at, done: p.done };
    const elapsedS = (at - this.first.at) / 1000;
    const ratePerS = elapsedS > 0 ? (p.done - this.first.done) / elapsedS : 0;
    const etaS = ratePerS > 0 ? Math.max(0, (p.total - p.done) / ratePerS) : undefined;
    return { ratePerS, etaS, elapsedS };
  }
}

export function formatDuration(s: number | undefined): string {
  if (s === undefined || !Number.isFinite(s)) return '--:--';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  const mm = String(m).padStart(h ? 2 : 1, '0');
  return `${h ? `${h}:` : ''}${mm}:${String(sec).padStart(2, '0')}`;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/** One redrawn line on a terminal: `[#####-----] 45,000/100,000 invitations  12,345/s  ETA 0:04`. */
export function ttyProgress(stream: NodeJS.WriteStream, { label = 'backfill', minIntervalMs = 100, now = Date.now } = {}): ProgressReporter {
  const math = new ProgressMath(now);
  let last = 0;
  let line = '';
  const draw = (p: ListProgress, force = false) => {
    const { ratePerS, etaS } = math.measure(p);
    const t = now();
    if (!force && t - last < minIntervalMs) return;
    last = t;
    const width = 24;
    const share = p.total > 0 ? Math.min(1, p.done / p.total) : 1;
    const filled = Math.round(share * width);
    line = `${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${fmt(p.done)}/${fmt(p.total)} ${p.unit}  ${fmt(ratePerS)}/s  ETA ${formatDuration(etaS)}`;
    stream.write(`\r${line.padEnd((stream.columns || 100) - 1).slice(0, (stream.columns || 100) - 1)}`);
  };
  let lastProgress: ListProgress | undefined;
  return {
    update(p) {
      lastProgress = p;
      draw(p, p.done >= p.total);
    },
    finish() {
      if (lastProgress) draw(lastProgress, true);
      if (line) stream.write('\n');
    },
  };
}

/** Without a terminal: one plain log line every `everyMs`. */
export function logProgress(log: Logger, { label = 'backfill', everyMs = 5000, now = Date.now } = {}): ProgressReporter {
  const math = new ProgressMath(now);
  let last = now();
  return {
    update(p) {
      const m = math.measure(p);
      if (now() - last < everyMs) return;
      last = now();
      log.info(
        { done: p.done, total: p.total, unit: p.unit, ratePerS: Math.round(m.ratePerS), etaS: m.etaS === undefined ? undefined : Math.round(m.etaS) },
        `${label}: ${fmt(p.done)}/${fmt(p.total)} ${p.unit}, ${fmt(m.ratePerS)}/s, ETA ${formatDuration(m.etaS)}`,
      );
    },
    finish() {},
  };
}
