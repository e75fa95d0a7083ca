import type { Progress, ProgressWait } from './progress.ts';

// What a progress display and its log lines say: pure functions of a phase's state and a time.

/** `m:ss` (or `h:mm:ss`); `--:--` when unknown. */
export function formatDuration(s: number | undefined): string {
  if (s === undefined || !Number.isFinite(s) || s < 0) return '--:--';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  const mm = String(m).padStart(h ? 2 : 1, '0');
  return `${h ? `${h}:` : ''}${mm}:${String(sec).padStart(2, '0')}`;
}

/** A count as people read it: `1,500`. */
export const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/** Where one phase stands, as the display and the log lines show it. */
export interface PhaseState {
  /** The run's start (ms). */
  startedAt: number;
  phase: string | undefined;
  progress: Progress | undefined;
  /** The phase's first update: where its rate is measured from. */
  first: { at: number; done: number } | undefined;
  /** Requests sent in this phase. */
  requests: number;
  wait: ProgressWait | undefined;
}

/**
 * Rate (since the phase's first update, waits included, so that it slows down while nothing
 * arrives) and ETA: undefined until something was done, never 0 while work is left, and
 * never before a known wait ends.
 */
export function estimate(s: PhaseState, at: number): { ratePerS: number | undefined; etaS: number | undefined } {
  const p = s.progress;
  if (!p || !s.first) return { ratePerS: undefined, etaS: undefined };
  const elapsedS = (at - s.first.at) / 1000;
  const ratePerS = elapsedS > 0 && p.done > s.first.done ? (p.done - s.first.done) / elapsedS : undefined;
  if (p.total === undefined) return { ratePerS, etaS: undefined };
  const left = p.total - p.done;
  if (left <= 0) return { ratePerS, etaS: 0 };
  if (ratePerS === undefined) return { ratePerS, etaS: undefined };
  const waitS = s.wait?.until === undefined ? 0 : (s.wait.until - at) / 1000;
  return { ratePerS, etaS: Math.max(1, Math.ceil(Math.max(left / ratePerS, waitS))) };
}

/** "waiting 3 s for Clerk's rate limit", or "waiting for the BAPI budget (BAPI_RATE_LIMIT), 4 s" when its end is not known. */
export function waitText(w: ProgressWait, at: number): string {
  if (w.until !== undefined) {
    const left = Math.ceil((w.until - at) / 1000);
    return left > 0 ? `waiting ${left} s for ${w.reason}` : `waiting for ${w.reason}`;
  }
  return `waiting for ${w.reason}, ${Math.max(0, Math.ceil((at - w.since) / 1000))} s`;
}

/** `12/40`, `1,500/3,000`, `12/200 organizations`, `12,000 rows`: the unit is left out when it is invitations (what every phase is about). */
export function counts(s: PhaseState): string {
  const p = s.progress;
  const unit = p && p.unit !== 'invitations' ? ` ${p.unit}` : '';
  if (p && p.total !== undefined) return `${fmt(p.done)}/${fmt(p.total)}${unit}`;
  if (p) return `${fmt(p.done)}${unit || ' invitations'}`;
  if (s.requests > 0) return `${fmt(s.requests)} request${s.requests === 1 ? '' : 's'}`;
  return '';
}

const BAR_MAX = 30;
const BAR_MIN = 8;

/**
 * The progress line, at most `columns - 1` wide:
 * `backfill 0:42  listing invitations 1,500/3,000 [########------]  ETA 0:40  37/s`, the rate
 * replaced by the wait while one lasts, `done` for the ETA once nothing is left. The bar is
 * full only when nothing is left; it shrinks (then goes) first when the line is too long.
 */
export function renderProgressLine(label: string, s: PhaseState, at: number, columns = 100): string {
  const width = Math.max(20, columns - 1);
  const { ratePerS, etaS } = estimate(s, at);
  const p = s.progress;
  const hasTotal = p !== undefined && p.total !== undefined;
  const what = [s.phase, counts(s)].filter(Boolean).join(' ');
  const head = `${label} ${formatDuration((at - s.startedAt) / 1000)}${what ? `  ${what}` : ''}`;
  const tail = [
    hasTotal ? (etaS === 0 ? 'done' : `ETA ${formatDuration(etaS)}`) : '',
    s.wait ? waitText(s.wait, at) : ratePerS !== undefined ? `${fmt(ratePerS)}/s` : '',
  ]
    .filter(Boolean)
    .join('  ');
  let bar = '';
  if (hasTotal) {
    const barWidth = Math.min(BAR_MAX, width - head.length - tail.length - 5);
    if (barWidth >= BAR_MIN) {
      const share = p.total! > 0 ? Math.min(1, p.done / p.total!) : 1;
      // Down, so that the last item left still shows an empty cell.
      const filled = p.done >= p.total! ? barWidth : Math.min(barWidth - 1, Math.floor(share * barWidth));
      bar = ` [${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]`;
    }
  }
  const line = `${head}${bar}${tail ? `  ${tail}` : ''}`;
  return line.length > width ? line.slice(0, width) : line;
}
