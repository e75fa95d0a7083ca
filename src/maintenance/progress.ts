import type { Logger } from '../logger.ts';
import type { ListProgress } from './lister.ts';
import { counts, estimate, fmt, formatDuration, renderProgressLine, waitText, type PhaseState } from './progress-line.ts';

/** Counts of the current phase: `done` of `total` `unit`s (`total` unset: not known, no bar). */
export interface Progress {
  unit: string;
  done: number;
  total?: number;
}

/** A pause in which the run sends nothing. */
export interface ProgressWait {
  /** What it waits for, to follow "waiting 3 s for": "Clerk's rate limit". */
  reason: string;
  /** When it began (ms, the run's clock). */
  since: number;
  /** When it ends, when known (a 429's Retry-After, a retry's backoff). */
  until?: number;
}

/**
 * Receives a run's progress: its phases ("listing invitations", "checking one by one"), each
 * one's counts, the waits in between, and the BAPI requests sent; `finish` ends the display.
 */
export interface ProgressReporter {
  /** A new phase begins; its counts, rate and ETA start over. */
  phase?(name: string): void;
  update(p: Progress): void;
  /** The wait in progress (it replaces any earlier one); undefined: nothing waits any more. */
  wait?(w: ProgressWait | undefined): void;
  /** One BAPI request sent (shown for a phase without counts). */
  request?(): void;
  /** Ends the display. */
  finish(): void;
}

export const silentProgress: Required<ProgressReporter> = { phase() {}, update() {}, wait() {}, request() {}, finish() {} };

/** `p` with every method (no-ops for those it lacks), `finish` called once at most. */
export function fullReporter(p: ProgressReporter | undefined): Required<ProgressReporter> {
  if (!p) return silentProgress;
  let finished = false;
  return {
    phase: (name) => p.phase?.(name),
    update: (x) => p.update(x),
    wait: (w) => p.wait?.(w),
    request: () => p.request?.(),
    finish() {
      if (finished) return;
      finished = true;
      p.finish();
    },
  };
}

/** Phase names of the lists, shared by backfill and reconciliation. */
export const PHASES = {
  invitations: 'listing invitations',
  byOrganization: "listing each organization's invitations",
  organizations: 'listing organizations',
  scan: 'reading the shared state',
  oneByOne: 'checking one by one',
} as const;

/**
 * Starts the invitations' phase and returns the lister's progress callback: once the lister
 * counts organizations (the instance-wide list answered 404), the phase says so.
 */
export function listingPhase(progress: Required<ProgressReporter>): (p: ListProgress) => void {
  progress.phase(PHASES.invitations);
  let byOrganization = false;
  return (p) => {
    if (p.unit === 'organizations' && !byOrganization) {
      byOrganization = true;
      progress.phase(PHASES.byOrganization);
    }
    progress.update(p);
  };
}

/** Time and timers, injectable so that tests can move them. */
export interface ProgressClock {
  now(): number;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export const systemClock: ProgressClock = {
  now: () => Date.now(),
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    // A progress display never keeps a finished command alive.
    t.unref();
    return t;
  },
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

/** A terminal-like stream: the bar needs `write` and reads `columns` at each redraw. */
export interface TtyStream {
  write(chunk: string): unknown;
  columns?: number;
}

export interface TtyProgress extends Required<ProgressReporter> {
  /**
   * Writes `text` (whole lines) above the bar, which is drawn again below it: what the
   * logger writes through while a bar is shown.
   */
  print(text: string): void;
}

export interface TtyProgressOptions {
  /** @defaultValue 'backfill' */
  label?: string;
  /** Redraw at least this often, whether or not anything happened (elapsed time, waits). @defaultValue 500 */
  tickMs?: number;
  /** Updates closer together than this wait for the next redraw. @defaultValue 100 */
  minIntervalMs?: number;
  clock?: ProgressClock;
}

/**
 * One redrawn line at the bottom of a terminal. A timer redraws it every `tickMs`, so that
 * elapsed time and a wait's countdown move while no item arrives. Each phase gets a line of
 * its own: the finished one stays above the next. Log lines (`print`) go above the bar.
 */
export function ttyProgress(stream: TtyStream, { label = 'backfill', tickMs = 500, minIntervalMs = 100, clock = systemClock }: TtyProgressOptions = {}): TtyProgress {
  const s: PhaseState = { startedAt: clock.now(), phase: undefined, progress: undefined, first: undefined, requests: 0, wait: undefined };
  let shown = false;
  let finished = false;
  let lastDraw = -Infinity;
  let timer: unknown;

  const render = () => renderProgressLine(label, s, clock.now(), stream.columns || 100);
  const draw = (force = true) => {
    const t = clock.now();
    if (!force && t - lastDraw < minIntervalMs) return;
    lastDraw = t;
    stream.write(`\r${render()}\x1b[K`);
    shown = true;
  };
  const start = () => {
    if (finished) return false;
    timer ??= clock.setInterval(() => draw(), tickMs);
    return true;
  };
  /** Leaves the line as it stands and moves below it. */
  const endLine = () => {
    if (!shown) return;
    draw();
    stream.write('\n');
    shown = false;
  };

  return {
    phase(name) {
      if (!start()) return;
      if (s.phase !== undefined || s.progress !== undefined) endLine();
      Object.assign(s, { phase: name, progress: undefined, first: undefined, requests: 0 });
      draw();
    },
    update(p) {
      if (!start()) return;
      const firstOfPhase = s.first === undefined;
      s.first ??= { at: clock.now(), done: p.done };
      s.progress = { ...p };
      draw(firstOfPhase || (p.total !== undefined && p.done >= p.total));
    },
    wait(w) {
      if (!start()) return;
      const changed = (w === undefined) !== (s.wait === undefined) || w?.reason !== s.wait?.reason;
      s.wait = w;
      if (changed) draw();
    },
    request() {
      if (!start()) return;
      s.requests++;
      draw(false);
    },
    finish() {
      if (finished) return;
      finished = true;
      if (timer !== undefined) clock.clearInterval(timer);
      s.wait = undefined;
      endLine();
    },
    print(text) {
      const lines = text.endsWith('\n') ? text : `${text}\n`;
      if (!shown) {
        stream.write(lines);
        return;
      }
      // One write: clear the bar, the text, the bar again below it.
      stream.write(`\r\x1b[2K${lines}${render()}\x1b[K`);
      lastDraw = clock.now();
    },
  };
}

export interface LogProgressOptions {
  /** @defaultValue 'backfill' */
  label?: string;
  /** At most one line this often, and at least one while something is going on. @defaultValue 5000 */
  everyMs?: number;
  clock?: ProgressClock;
}

/**
 * Without a terminal: a line at each phase, and one every `everyMs` while it lasts (a timer
 * writes it when no item arrives, say during a long wait), with the wait's reason.
 */
export function logProgress(log: Logger, { label = 'backfill', everyMs = 5000, clock = systemClock }: LogProgressOptions = {}): Required<ProgressReporter> {
  const s: PhaseState = { startedAt: clock.now(), phase: undefined, progress: undefined, first: undefined, requests: 0, wait: undefined };
  let last = clock.now();
  let timer: unknown;
  let finished = false;

  const line = () => {
    const t = clock.now();
    last = t;
    const m = estimate(s, t);
    const p = s.progress;
    const parts = [
      counts(s),
      m.ratePerS === undefined ? '' : `${fmt(m.ratePerS)}/s`,
      p?.total === undefined ? '' : `ETA ${formatDuration(m.etaS)}`,
      s.wait ? waitText(s.wait, t) : '',
    ].filter(Boolean);
    log.info(
      {
        phase: s.phase,
        ...(p ? { done: p.done, total: p.total, unit: p.unit } : { requests: s.requests }),
        ratePerS: m.ratePerS === undefined ? undefined : Math.round(m.ratePerS),
        etaS: m.etaS,
        waitingFor: s.wait?.reason,
      },
      `${label}: ${s.phase ?? 'running'}${parts.length ? `, ${parts.join(', ')}` : ''}`,
    );
  };
  const start = () => {
    if (finished) return false;
    timer ??= clock.setInterval(() => {
      if (clock.now() - last >= everyMs) line();
    }, everyMs);
    return true;
  };

  return {
    phase(name) {
      if (!start()) return;
      Object.assign(s, { phase: name, progress: undefined, first: undefined, requests: 0 });
      last = clock.now();
      log.info({ phase: name }, `${label}: ${name}`);
    },
    update(p) {
      if (!start()) return;
      s.first ??= { at: clock.now(), done: p.done };
      s.progress = { ...p };
      if (clock.now() - last >= everyMs) line();
    },
    wait(w) {
      if (start()) s.wait = w;
    },
    request() {
      if (start()) s.requests++;
    },
    finish() {
      if (finished) return;
      finished = true;
      if (timer !== undefined) clock.clearInterval(timer);
    },
  };
}
