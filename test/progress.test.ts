import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BapiClient } from '../src/bapi/client.ts';
import { createLogger } from '../src/logger.ts';
import { runBackfill } from '../src/maintenance/backfill.ts';
import {
  logProgress,
  PHASES,
  renderProgressLine,
  ttyProgress,
  type PhaseState,
  type Progress,
  type ProgressClock,
  type ProgressReporter,
  type ProgressWait,
} from '../src/maintenance/progress.ts';
import { SharedRateLimiter } from '../src/bapi/rate-limiter.ts';
import { runReconcile } from '../src/maintenance/reconcile.ts';
import { startSimulator, type Simulator, type SimulatorOptions } from '../src/simulator/index.ts';
import { killAllChildren, runCli } from './helpers/child.ts';
import { tempDir } from './helpers/fixtures.ts';
import { SECRET_KEY, SIGNING_SECRET } from './helpers/pipeline.ts';
import { stateSpace, testRedis, type StateSpace } from './helpers/state.ts';

/**
 * What a terminal shows after the bytes written to it: `\r`, `\n`, erase line (`ESC[2K`) and
 * erase to its end (`ESC[K`) are all the bar uses; anything else is text.
 */
const ESC = String.fromCharCode(27);

class Screen {
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
function fakeClock(start = 1_700_000_000_000) {
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

/** Records what a run reports, and shows it on a screen through the terminal bar (real clock). */
function recorder() {
  const screen = new Screen(120);
  const bar = ttyProgress(screen, { label: 'run' });
  const events: ({ phase: string } | { update: Progress; line: string } | { wait: ProgressWait | undefined; line: string })[] = [];
  const reporter: ProgressReporter = {
    phase(name) {
      bar.phase(name);
      events.push({ phase: name });
    },
    update(p) {
      bar.update(p);
      events.push({ update: { ...p }, line: renderProgressLine('run', { startedAt: 0, phase: current(), progress: p, first: undefined, requests: 0, wait: undefined }, 0) });
    },
    wait(w) {
      bar.wait(w);
      events.push({ wait: w, line: screen.current });
    },
    request: () => bar.request(),
    finish: () => bar.finish(),
  };
  const current = () => [...events].reverse().find((e): e is { phase: string } => 'phase' in e)?.phase;
  return { reporter, events, screen, phases: () => events.filter((e): e is { phase: string } => 'phase' in e).map((e) => e.phase) };
}

describe('what backfill and reconciliation report (simulator, real Redis)', () => {
  const tmp = tempDir();
  const sims: Simulator[] = [];
  let redis: Redis;
  beforeAll(() => {
    redis = testRedis();
  });
  afterAll(async () => {
    killAllChildren();
    for (const s of sims) await s.close();
    await redis?.quit();
    tmp.cleanup();
  });
  async function sim(opts: Partial<SimulatorOptions> = {}) {
    const s = await startSimulator({ secretKey: SECRET_KEY, signingSecret: SIGNING_SECRET, rateLimit: 0, ...opts });
    sims.push(s);
    return s;
  }
  const deps = (s: Simulator, sp: StateSpace, rateLimit = { max: 100_000, windowMs: 10_000 }) => ({
    state: sp.state,
    publisher: sp.publisher,
    bapi: new BapiClient({ apiUrl: s.url, secretKey: SECRET_KEY, timeoutMs: 5000 }),
    limiter: new SharedRateLimiter({ connection: redis, keys: sp.keys, rateLimit }),
    log: createLogger({ level: 'silent' }),
  });

  it("reconciliation names its phases, and its one-by-one phase counts up to its items with a bar that is full only at the end", async () => {
    const s = await sim();
    const { organizationIds } = s.store.seed({ organizations: 3, invitationsPerOrganization: 6 });
    const sp = stateSpace(redis, 'progress-reconcile');
    expect((await runBackfill(deps(s, sp))).status).toBe('completed');
    // Its invitations leave the lists: each is asked for one by one (and found gone).
    s.store.deleteOrganization(organizationIds[0]!, { webhook: false });

    const rec = recorder();
    const report = await runReconcile({ ...deps(s, sp), concurrency: 2, progress: rec.reporter });
    expect(report).toMatchObject({ status: 'completed', refetched: 6, drift: { gone: { found: 6, repaired: 6 } } });
    expect(rec.phases()).toEqual([PHASES.invitations, PHASES.organizations, PHASES.scan, PHASES.oneByOne]);

    const oneByOne = rec.events.slice(rec.events.findIndex((e) => 'phase' in e && e.phase === PHASES.oneByOne) + 1).flatMap((e) => ('update' in e ? [e] : []));
    expect(oneByOne.map((e) => e.update.done)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    for (const e of oneByOne) {
      expect(e.update.total).toBe(6);
      expect(e.line).toContain(`checking one by one ${e.update.done}/6 [`);
      if (e.update.done < 6) expect(e.line).toMatch(/\[#*-+\]/);
      else expect(e.line).toMatch(/\[#+\]/);
    }
    // On the screen: one line per phase, the last one complete.
    const shown = rec.screen.text();
    expect(shown.map((l) => /^run \d:\d\d {2}(.*?)(?: \d|$)/.exec(l)?.[1])).toEqual([PHASES.invitations, PHASES.organizations, PHASES.scan, PHASES.oneByOne]);
    expect(shown.at(-1)).toMatch(/checking one by one 6\/6 \[#+\] {2}done/);

    // --targeted: no lists, straight to the shared state and one by one.
    const targeted = recorder();
    await runReconcile({ ...deps(s, sp), lists: false, maxAgeMs: 0, progress: targeted.reporter });
    expect(targeted.phases()).toEqual([PHASES.scan, PHASES.oneByOne]);
  });

  it("backfill says when it waits for Clerk's rate limit (a 429 burst) and for the shared budget, and when the wait is over", async () => {
    const s = await sim();
    s.store.seed({ organizations: 2, invitationsPerOrganization: 10 });
    s.setFaults({ rateLimitBurst: { untilMs: s.store.now() + 1500 } });
    const burst = recorder();
    const summary = await runBackfill({ ...deps(s, stateSpace(redis, 'progress-429')), pageSize: 5, progress: burst.reporter });
    expect(summary.status).toBe('completed');
    expect(summary.rateLimited).toBeGreaterThan(0);
    const waits = burst.events.flatMap((e) => ('wait' in e ? [e] : []));
    const clerk = waits.find((e) => e.wait?.reason === "Clerk's rate limit");
    expect(clerk?.wait?.until).toBeGreaterThan(clerk!.wait!.since);
    expect(clerk!.line).toMatch(/^run \d:\d\d {2}listing invitations .*waiting \d s for Clerk's rate limit$/);
    expect(waits.at(-1)?.wait).toBeUndefined();

    // Our own budget: 2 requests per second for a run that needs 6 (4 pages, the shape probe, the organizations).
    const budget = recorder();
    const slow = await runBackfill({ ...deps(s, stateSpace(redis, 'progress-budget'), { max: 2, windowMs: 1000 }), pageSize: 5, concurrency: 1, progress: budget.reporter });
    expect(slow).toMatchObject({ status: 'completed', rateLimited: 0 });
    const budgetWaits = budget.events.flatMap((e) => ('wait' in e && e.wait ? [e] : []));
    expect(budgetWaits.length).toBeGreaterThan(0);
    for (const e of budgetWaits) {
      expect(e.wait!.reason).toBe('the BAPI budget (BAPI_RATE_LIMIT)');
      expect(e.line).toMatch(/waiting for the BAPI budget \(BAPI_RATE_LIMIT\), \d+ s$/);
    }
  });

  it('the backfill command logs JSON without a terminal, readable lines with LOG_FORMAT=pretty, and refuses another LOG_FORMAT', async () => {
    // One request a second: a run of several requests in flight at once meets a 429.
    const s = await sim({ rateLimit: 1, rateWindowMs: 1000 });
    s.store.seed({ organizations: 1, invitationsPerOrganization: 4 });
    const run = async (name: string, extra: Record<string, string>) => {
      const sp = stateSpace(redis, name);
      return runCli(['backfill', '--page-size', '2'], {
        CLERK_SECRET_KEY: SECRET_KEY,
        CLERK_API_URL: s.url,
        REDIS_URL: inject('redisUrl'),
        REDIS_KEY_PREFIX: sp.keys.prefix,
        MIRROR_DB_PATH: join(tmp.path, `${name}.db`),
        BAPI_RATE_LIMIT: '100000',
        ...extra,
      });
    };
    const json = await run('cli-json', {});
    expect(json.code).toBe(0);
    const logLines = json.output.split('\n').filter((l) => l.startsWith('{'));
    expect(logLines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toContain('BAPI answered 429: pausing every BAPI caller of this instance');
    expect(json.output).toMatch(/^backfill completed/m);

    const pretty = await run('cli-pretty', { LOG_FORMAT: 'pretty' });
    expect(pretty.code).toBe(0);
    expect(pretty.output).toMatch(/^\d\d:\d\d:\d\d WARN {2}BAPI answered 429: pausing every BAPI caller of this instance waitMs=\d+ what="list instance invitations"$/m);
    expect(pretty.output).toMatch(/^\d\d:\d\d:\d\d INFO {2}backfill: listing invitations phase="listing invitations"$/m);
    expect(pretty.output).not.toMatch(/^\{/m);

    const bad = await run('cli-bad', { LOG_FORMAT: 'xml' });
    expect(bad.code).toBe(78);
    expect(bad.output.trim()).toBe('clerk-invitation-mirror backfill: LOG_FORMAT: expected one of auto, json, pretty');
  });
});
