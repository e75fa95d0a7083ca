import { describe, expect, it } from 'vitest';
import { createLogger } from '../logger.ts';
import { fakeClock, Screen } from '../../test/helpers/terminal.ts';
import { estimate, formatDuration, renderProgressLine, waitText, type PhaseState } from './progress-line.ts';
import { fullReporter, listingPhase, logProgress, PHASES, silentProgress, ttyProgress, type Progress, type ProgressReporter, type ProgressWait } from './progress.ts';

describe('formatDuration', () => {
  it('m:ss below an hour, h:mm:ss from one, rounded to the second', () => {
    expect([0, 0.4, 0.6, 9, 59.5, 61, 600, 3599].map(formatDuration)).toEqual(['0:00', '0:00', '0:01', '0:09', '1:00', '1:01', '10:00', '59:59']);
    expect([3600, 3661, 36_000 + 59, 100 * 3600].map(formatDuration)).toEqual(['1:00:00', '1:01:01', '10:00:59', '100:00:00']);
  });

  it('--:-- when unknown, negative or not finite', () => {
    expect([undefined, -1, Number.NaN, Number.POSITIVE_INFINITY].map(formatDuration)).toEqual(['--:--', '--:--', '--:--', '--:--']);
  });
});

describe('estimate (rate and ETA of a phase)', () => {
  const at0 = 1_000_000;
  const phase = (progress: Progress | undefined, first: PhaseState['first'], wait?: ProgressWait): PhaseState => ({
    startedAt: at0,
    phase: PHASES.invitations,
    progress,
    first,
    requests: 0,
    wait,
  });

  it('knows nothing before the first update', () => {
    expect(estimate(phase(undefined, undefined), at0 + 5000)).toEqual({ ratePerS: undefined, etaS: undefined });
  });

  it('measures the rate from the first update: 300 more in 10 s is 30/s, 600 left is 20 s', () => {
    const s = phase({ unit: 'invitations', done: 400, total: 1300 }, { at: at0, done: 100 });
    expect(estimate(s, at0 + 10_000)).toEqual({ ratePerS: 30, etaS: 30 });
  });

  it('slows down while nothing arrives (waits count), and rounds the ETA up', () => {
    const s = phase({ unit: 'invitations', done: 100, total: 201 }, { at: at0, done: 0 });
    expect(estimate(s, at0 + 10_000)).toEqual({ ratePerS: 10, etaS: 11 });
    expect(estimate(s, at0 + 20_000)).toEqual({ ratePerS: 5, etaS: 21 });
  });

  it('no rate while nothing more was done; no ETA without a rate, nor without a total', () => {
    expect(estimate(phase({ unit: 'invitations', done: 5, total: 10 }, { at: at0, done: 5 }), at0 + 3000)).toEqual({ ratePerS: undefined, etaS: undefined });
    expect(estimate(phase({ unit: 'invitations', done: 50 }, { at: at0, done: 0 }), at0 + 10_000)).toEqual({ ratePerS: 5, etaS: undefined });
  });

  it('ETA 0 once nothing is left, but never 0 while one item is', () => {
    expect(estimate(phase({ unit: 'invitations', done: 10, total: 10 }, { at: at0, done: 0 }), at0 + 1000).etaS).toBe(0);
    expect(estimate(phase({ unit: 'invitations', done: 999_999, total: 1_000_000 }, { at: at0, done: 0 }), at0 + 1000).etaS).toBe(1);
  });

  it('not before a wait of known end is over', () => {
    const wait = { reason: "Clerk's rate limit", since: at0 + 10_000, until: at0 + 40_000 };
    // 100/s and 100 left would be 1 s; the wait has 30 s to go.
    expect(estimate(phase({ unit: 'invitations', done: 1000, total: 1100 }, { at: at0, done: 0 }, wait), at0 + 10_000).etaS).toBe(30);
    // A wait of unknown end does not add to it.
    expect(estimate(phase({ unit: 'invitations', done: 1000, total: 1100 }, { at: at0, done: 0 }, { reason: 'x', since: at0 }), at0 + 10_000).etaS).toBe(1);
  });
});

describe('waitText', () => {
  it('counts a wait of known end down (whole seconds, rounded up), then says it still waits', () => {
    const w = { reason: "Clerk's rate limit", since: 0, until: 6000 };
    expect(waitText(w, 0)).toBe("waiting 6 s for Clerk's rate limit");
    expect(waitText(w, 4500)).toBe("waiting 2 s for Clerk's rate limit");
    expect(waitText(w, 6000)).toBe("waiting for Clerk's rate limit");
    expect(waitText(w, 9000)).toBe("waiting for Clerk's rate limit");
  });

  it('counts a wait of unknown end up', () => {
    const w = { reason: 'the BAPI budget (BAPI_RATE_LIMIT)', since: 10_000 };
    expect(waitText(w, 10_000)).toBe('waiting for the BAPI budget (BAPI_RATE_LIMIT), 0 s');
    expect(waitText(w, 13_200)).toBe('waiting for the BAPI budget (BAPI_RATE_LIMIT), 4 s');
  });
});

describe('fullReporter and listingPhase', () => {
  it('no reporter: the silent one', () => {
    expect(fullReporter(undefined)).toBe(silentProgress);
  });

  it('fills the optional methods with no-ops, forwards the others, and finishes once', () => {
    const calls: string[] = [];
    const partial: ProgressReporter = { update: (p) => void calls.push(`update ${p.done}`), finish: () => void calls.push('finish') };
    const r = fullReporter(partial);
    r.phase('x');
    r.wait(undefined);
    r.request();
    r.update({ unit: 'invitations', done: 3 });
    r.finish();
    r.finish();
    expect(calls).toEqual(['update 3', 'finish']);
  });

  it('starts the invitations phase, and switches to the per-organization one when the lister counts organizations', () => {
    const calls: string[] = [];
    const r = fullReporter({ phase: (n) => void calls.push(`phase ${n}`), update: (p) => void calls.push(`${p.done}/${p.total} ${p.unit}`), finish() {} });
    const onList = listingPhase(r);
    onList({ unit: 'invitations', done: 0, total: 10 });
    onList({ unit: 'organizations', done: 0, total: 4 });
    onList({ unit: 'organizations', done: 1, total: 4 });
    expect(calls).toEqual([`phase ${PHASES.invitations}`, '0/10 invitations', `phase ${PHASES.byOrganization}`, '0/4 organizations', '1/4 organizations']);
  });
});

const frame = (screen: Screen) => screen.current;

describe('the progress bar on a terminal', () => {
  it('redraws every tick while waiting, without any item arriving: elapsed time ticks and the wait counts down with its reason', () => {
    const screen = new Screen();
    const c = fakeClock();
    const bar = ttyProgress(screen, { label: 'backfill', clock: c.clock, tickMs: 500 });
    bar.phase(PHASES.invitations);
    bar.update({ unit: 'invitations', done: 0, total: 3000 });
    c.advance(1000);
    bar.update({ unit: 'invitations', done: 2500, total: 3000 });
    bar.wait({ reason: "Clerk's rate limit", since: c.clock.now(), until: c.clock.now() + 6000 });
    expect(frame(screen)).toMatch(/^backfill 0:01 {2}listing invitations 2,500\/3,000 \[#+-+\] {2}ETA 0:06 {2}waiting 6 s for Clerk's rate limit$/);

    const frames: string[] = [];
    for (let i = 0; i < 6; i++) {
      const before = screen.writes;
      c.advance(1000);
      // Nothing arrived, yet the line was drawn again within that second.
      expect(screen.writes).toBeGreaterThan(before);
      frames.push(frame(screen));
    }
    expect(frames.map((f) => /^backfill (\d:\d\d)/.exec(f)?.[1])).toEqual(['0:02', '0:03', '0:04', '0:05', '0:06', '0:07']);
    expect(frames.slice(0, 5).map((f) => /waiting (\d) s for Clerk's rate limit/.exec(f)?.[1])).toEqual(['5', '4', '3', '2', '1']);
    // Work is left: the ETA is never 0:00 (it was at least the wait, and now the slowed-down rate).
    for (const f of frames) {
      expect(f).toMatch(/ETA \d+:\d\d/);
      expect(f).not.toMatch(/ETA 0:00/);
    }

    bar.wait(undefined);
    c.advance(500);
    expect(frame(screen)).not.toMatch(/waiting/);
    expect(frame(screen)).toMatch(/ETA 0:0[1-9] {2}\d+\/s$/);
    bar.update({ unit: 'invitations', done: 3000, total: 3000 });
    bar.finish();
    expect(c.timers.size).toBe(0);
    const after = screen.writes;
    c.advance(5000);
    expect(screen.writes).toBe(after);
    expect(screen.text().at(-1)).toMatch(/2?3,000\/3,000 \[#+\] {2}done/);
  });

  it('says --:-- while nothing is done yet, and counts a wait of unknown end upwards', () => {
    const screen = new Screen();
    const c = fakeClock();
    const bar = ttyProgress(screen, { label: 'reconcile', clock: c.clock });
    bar.phase(PHASES.oneByOne);
    bar.update({ unit: 'invitations', done: 0, total: 40 });
    expect(frame(screen)).toMatch(/checking one by one 0\/40 \[-+\] {2}ETA --:--$/);
    bar.wait({ reason: 'the BAPI budget (BAPI_RATE_LIMIT)', since: c.clock.now() });
    c.advance(3000);
    expect(frame(screen)).toMatch(/ETA --:-- {2}waiting for the BAPI budget \(BAPI_RATE_LIMIT\), 3 s$/);
    bar.finish();
  });

  it('prints a log line above the bar: the bar line is cleared, the log written, the bar drawn again below it', () => {
    const screen = new Screen(100);
    const c = fakeClock();
    const bar = ttyProgress(screen, { label: 'backfill', clock: c.clock });
    const log = createLogger({ level: 'info', format: 'pretty', destination: { write: (line: string) => bar.print(line) } });
    bar.phase(PHASES.invitations);
    bar.update({ unit: 'invitations', done: 500, total: 2000 });
    log.warn({ waitMs: 3000 }, 'BAPI answered 429');
    c.advance(1000);
    log.error({ email: 'ada@example.com' }, 'something failed for grace@example.org');
    c.advance(1000);
    const lines = screen.text();
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d WARN {2}BAPI answered 429 waitMs=3000$/);
    expect(lines[1]).toMatch(/^\d\d:\d\d:\d\d ERROR something failed for \[email\] email=\[email\]$/);
    expect(lines[2]).toMatch(/^backfill 0:02 {2}listing invitations 500\/2,000 \[/);
    bar.finish();
    // Once the bar is done, lines go below it, as they come.
    log.warn('after');
    expect(screen.text().at(-1)).toMatch(/WARN {2}after$/);
    expect(screen.text().at(-2)).toMatch(/^backfill 0:02/);
  });

  it('keeps each finished phase on a line of its own, and fits the line to the terminal', () => {
    const screen = new Screen(60);
    const c = fakeClock();
    const bar = ttyProgress(screen, { label: 'reconcile', clock: c.clock });
    bar.phase(PHASES.invitations);
    bar.update({ unit: 'invitations', done: 10, total: 10 });
    bar.phase(PHASES.organizations);
    bar.request();
    bar.request();
    bar.wait({ reason: "Clerk's rate limit", since: c.clock.now(), until: c.clock.now() + 2000 });
    expect(screen.text()).toEqual([expect.stringMatching(/^reconcile 0:00 {2}listing invitations 10\/10 \[#+\] {2}done$/), 'reconcile 0:00  listing organizations 2 requests  waiting 2']);
    for (const l of screen.text()) expect(l.length).toBeLessThan(60);
    bar.finish();
  });
});

describe('renderProgressLine', () => {
  const state = (p: Progress | undefined, wait?: ProgressWait): PhaseState => ({ startedAt: 0, phase: PHASES.oneByOne, progress: p, first: { at: 0, done: 0 }, requests: 0, wait });

  it('never fills the bar while an item is left', () => {
    for (const total of [40, 1000, 100_000]) {
      const line = renderProgressLine('reconcile', state({ unit: 'invitations', done: total - 1, total }), 60_000, 120);
      expect(line).toMatch(/\[#+-\]/);
      expect(line).not.toMatch(/ETA 0:00/);
      expect(renderProgressLine('reconcile', state({ unit: 'invitations', done: total, total }), 60_000, 120)).toMatch(/\[#+\] {2}done/);
    }
  });

  it('drops the bar before the wait when the terminal is narrow', () => {
    const at = (columns: number) => renderProgressLine('reconcile', state({ unit: 'invitations', done: 12, total: 40 }, { reason: "Clerk's rate limit", since: 0, until: 63_000 }), 60_000, columns);
    // 12 in 60 s, 28 left: 2:20.
    expect(at(120)).toMatch(/^reconcile 1:00 {2}checking one by one 12\/40 \[#+-+\] {2}ETA 2:20 {2}waiting 3 s for Clerk's rate limit$/);
    expect(at(90)).toBe("reconcile 1:00  checking one by one 12/40  ETA 2:20  waiting 3 s for Clerk's rate limit");
    expect(at(60)).toHaveLength(59);
  });
});

describe('progress without a terminal', () => {
  it('logs each phase, and a line every interval while it waits, naming the wait', () => {
    const lines: Record<string, unknown>[] = [];
    const log = createLogger({ level: 'info', destination: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) } });
    const c = fakeClock();
    const p = logProgress(log, { label: 'reconcile', everyMs: 5000, clock: c.clock });
    p.phase(PHASES.oneByOne);
    p.update({ unit: 'invitations', done: 0, total: 40 });
    p.wait({ reason: "Clerk's rate limit", since: c.clock.now(), until: c.clock.now() + 12_000 });
    c.advance(11_000);
    expect(lines.map((l) => l.msg)).toEqual([
      'reconcile: checking one by one',
      "reconcile: checking one by one, 0/40, ETA --:--, waiting 7 s for Clerk's rate limit",
      "reconcile: checking one by one, 0/40, ETA --:--, waiting 2 s for Clerk's rate limit",
    ]);
    expect(lines[1]).toMatchObject({ phase: PHASES.oneByOne, done: 0, total: 40, waitingFor: "Clerk's rate limit" });
    p.finish();
    c.advance(20_000);
    expect(lines).toHaveLength(3);
  });
});
