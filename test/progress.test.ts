import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BapiClient } from '../src/bapi/client.ts';
import { createLogger } from '../src/logger.ts';
import { runBackfill } from '../src/maintenance/backfill.ts';
import { renderProgressLine } from '../src/maintenance/progress-line.ts';
import { PHASES, ttyProgress, type Progress, type ProgressReporter, type ProgressWait } from '../src/maintenance/progress.ts';
import { SharedRateLimiter } from '../src/bapi/rate-limiter.ts';
import { runReconcile } from '../src/maintenance/reconcile.ts';
import { startSimulator, type Simulator, type SimulatorOptions } from '../src/simulator/index.ts';
import { killAllChildren, runCli } from './helpers/child.ts';
import { tempDir } from './helpers/fixtures.ts';
import { SECRET_KEY, SIGNING_SECRET } from './helpers/pipeline.ts';
import { stateSpace, testRedis, type StateSpace } from './helpers/state.ts';
import { Screen } from './helpers/terminal.ts';

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
