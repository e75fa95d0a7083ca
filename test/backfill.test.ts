import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BapiClient } from '../src/bapi/client.ts';
import { createLogger } from '../src/logger.ts';
import { startSimulator, type Simulator, type SimulatorOptions } from '../src/simulator/index.ts';
import { runBackfill } from '../src/maintenance/backfill.ts';
import { SharedRateLimiter } from '../src/bapi/rate-limiter.ts';
import { RECORDS } from '../src/state/shared-state.ts';
import { tempDir } from './helpers/fixtures.ts';
import { SECRET_KEY, SIGNING_SECRET } from './helpers/pipeline.ts';
import { liveStates, stateSpace, type StateSpace } from './helpers/state.ts';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin/clerk-invitation-mirror.js');
const tmp = tempDir();
let redisUrl: string;
let redis: Redis;
const lines: string[] = [];
const log = createLogger({
  level: 'debug',
  destination: new Writable({
    write(chunk, _e, cb) {
      lines.push(String(chunk));
      cb();
    },
  }),
});
const sims: Simulator[] = [];

beforeAll(async () => {
  redisUrl = inject('redisUrl');
  redis = new Redis(redisUrl);
});
afterAll(async () => {
  for (const s of sims) await s.close();
  await redis?.quit();
  tmp.cleanup();
});

async function sim(opts: Partial<SimulatorOptions> = {}): Promise<Simulator> {
  const s = await startSimulator({ secretKey: SECRET_KEY, signingSecret: SIGNING_SECRET, rateLimit: 0, ...opts });
  sims.push(s);
  return s;
}

function space(name: string): StateSpace {
  return stateSpace(redis, name);
}

function deps(s: Simulator, sp: StateSpace, rateLimit = { max: 100_000, windowMs: 10_000 }) {
  return {
    state: sp.state,
    publisher: sp.publisher,
    bapi: new BapiClient({ apiUrl: s.url, secretKey: SECRET_KEY, timeoutMs: 5000 }),
    limiter: new SharedRateLimiter({ connection: redis, keys: sp.keys, rateLimit }),
    log,
  };
}

async function expectEqualsTruth(sp: StateSpace, s: Simulator) {
  const truth = s.store.truth();
  const got = await liveStates(sp.state);
  expect(got.size).toBe(truth.length);
  for (const inv of truth) expect(got.get(inv.id)).toStrictEqual(inv);
}

/** Everything but our own clock (confirmedAt), invitation by invitation. */
async function snapshot(sp: StateSpace) {
  const all = [];
  for await (const batch of sp.state.scan()) for (const { confirmedAt: _c, ...rest } of batch) all.push(rest);
  return all.sort((a, b) => a.id.localeCompare(b.id));
}

describe('backfill', () => {
  it('pages the instance-wide list into the shared state in the single GET shape, one publish per page, and marks it filled', async () => {
    const s = await sim();
    s.store.seed({ organizations: 5, invitationsPerOrganization: 30 });
    const sp = space('instance');
    const first = await runBackfill({ ...deps(s, sp), pageSize: 20 });
    expect(first).toMatchObject({ status: 'completed', mode: 'instance', pages: 8, rows: { inserted: 150, updated: 0, unchanged: 0, stale: 0 }, rateLimited: 0 });
    // 8 pages, one single GET that probes which list fields the single GET lacks, one page of organizations.
    expect(first.requests).toBe(10);
    expect(first.organizations).toEqual({ listed: 5, complete: true });
    expect(s.stats().byRoute['GET /v1/organization_invitations']).toBe(8);
    // public_organization_data is in the list items but not in the single GET: not stored.
    await expectEqualsTruth(sp, s);
    expect((await snapshot(sp)).filter((x) => x.fields.source === 'backfill')).toHaveLength(150);
    expect(await sp.state.record(RECORDS.backfillCursor)).toBeUndefined();
    expect(await sp.state.record(RECORDS.backfillLast)).toBeDefined();
    expect((await sp.state.meta())!.filledAt).toBeGreaterThan(0);
    // What every replica applies: one change per invitation (one stream entry per page), then
    // one per organization, in one entry.
    expect((await sp.state.meta())!.seq).toBe(155);
    expect(await redis.xlen(sp.keys.changes)).toBe(9);
    expect((await sp.state.meta())!.organizationsListedSeq).toBe(155);

    const again = await runBackfill({ ...deps(s, sp), pageSize: 20 });
    expect(again.rows).toEqual({ inserted: 0, updated: 0, unchanged: 150, stale: 0 });
    expect((await sp.state.meta())!.seq).toBe(155);
  });

  it('keeps public_organization_data when the single GET has it too', async () => {
    const s = await sim({ publicOrganizationDataOnGet: true });
    s.store.seed({ organizations: 2, invitationsPerOrganization: 5 });
    const sp = space('with-org-data');
    expect((await runBackfill({ ...deps(s, sp) })).status).toBe('completed');
    await expectEqualsTruth(sp, s);
    expect([...(await liveStates(sp.state)).values()].every((r) => (r as Record<string, unknown>).public_organization_data)).toBe(true);
  });

  it('falls back to organizations when the instance-wide list is 404, and under a 100-per-window limit no request is refused after the first 429', async () => {
    const s = await sim({ instanceListAvailable: false, rateLimit: 100, rateWindowMs: 2000 });
    s.store.seed({ organizations: 200, invitationsPerOrganization: 3 });
    const sp = space('fallback');
    // Another client of the same Clerk instance spends the whole window: our first call gets a 429.
    for (let i = 0; i < 100; i++) {
      await fetch(`${s.url}/v1/organizations?limit=1`, { headers: { authorization: `Bearer ${SECRET_KEY}` } }).then((r) => r.arrayBuffer());
    }
    s.resetStats();
    // Most of the budget, over the simulator's window: the backfill still meets the other client's 429s.
    const summary = await runBackfill({ ...deps(s, sp, { max: 90, windowMs: 2000 }), concurrency: 4 });
    expect(summary).toMatchObject({ status: 'completed', mode: 'organizations', rows: { inserted: 600 } });
    await expectEqualsTruth(sp, s);

    const st = s.stats();
    // The 404 that switched modes (after the 429 its first try got).
    expect(st.byRoute['GET /v1/organization_invitations']).toBe(2);
    expect(st.rateLimited).toBeGreaterThanOrEqual(1);
    // Only requests already in flight when the first 429 came back can be refused.
    expect(st.rateLimited).toBeLessThanOrEqual(4);
    const refusedWindows = st.rateWindows.filter((w) => w.refused > 0);
    expect(refusedWindows).toHaveLength(1);
    const later = st.rateWindows.filter((w) => w.startedAt > refusedWindows[0]!.startedAt);
    expect(later.length).toBeGreaterThanOrEqual(2);
    expect(later.every((w) => w.refused === 0 && w.accepted <= 100)).toBe(true);
    expect(summary.rateLimited).toBe(st.rateLimited);
  });

  it('a backfill SIGKILLed halfway resumes from its cursor and ends with the same rows as an uninterrupted one', async () => {
    const s = await sim({ faults: { latencyMs: 15 } });
    s.store.seed({ organizations: 10, invitationsPerOrganization: 100 });

    const reference = space('uninterrupted');
    expect((await runBackfill({ ...deps(s, reference), pageSize: 10, concurrency: 2 })).status).toBe('completed');

    const killed = space('killed');
    const cursor = async () => (await killed.state.record<{ position: { next: number } }>(RECORDS.backfillCursor))?.position.next;
    const child = spawn(process.execPath, [BIN, 'backfill', '--page-size', '10', '--concurrency', '2'], {
      env: {
        PATH: process.env.PATH!,
        CLERK_SECRET_KEY: SECRET_KEY,
        CLERK_API_URL: s.url,
        REDIS_URL: redisUrl,
        REDIS_KEY_PREFIX: killed.keys.prefix,
        MIRROR_DB_PATH: join(tmp.path, 'killed.db'),
        BAPI_RATE_LIMIT: '100000',
        LOG_LEVEL: 'warn',
      },
      stdio: 'ignore',
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    const deadline = Date.now() + 20_000;
    let at = 0;
    while (Date.now() < deadline) {
      at = (await cursor()) ?? 0;
      if (at >= 300) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    expect(at).toBeGreaterThanOrEqual(300);
    const before = await killed.state.size();
    expect(before).toBeGreaterThanOrEqual(300);
    expect(before).toBeLessThan(1000);

    const resumed = await runBackfill({ ...deps(s, killed), pageSize: 10, concurrency: 2 });
    expect(resumed.status).toBe('completed');
    expect(await cursor()).toBeUndefined();
    expect(resumed.resumedFrom?.next).toBeGreaterThanOrEqual(at);
    // It re-read at most the pages in flight when it was killed, never the whole list.
    expect(resumed.pages).toBeLessThanOrEqual(Math.ceil((1000 - resumed.resumedFrom!.next) / 10));
    expect(resumed.rows.inserted + resumed.rows.unchanged).toBe(1000 - resumed.resumedFrom!.next);
    expect(await snapshot(killed)).toEqual(await snapshot(reference));
    await expectEqualsTruth(killed, s);
  });

  it('an aborted backfill stops, keeps its cursor and resumes', async () => {
    const s = await sim({ faults: { latencyMs: 10 } });
    s.store.seed({ organizations: 4, invitationsPerOrganization: 50 });
    const sp = space('aborted');
    const controller = new AbortController();
    let pages = 0;
    const first = await runBackfill({
      ...deps(s, sp),
      pageSize: 10,
      concurrency: 1,
      signal: controller.signal,
      progress: { update: () => void (++pages === 5 && controller.abort()), finish() {} },
    });
    expect(first.status).toBe('interrupted');
    expect(await sp.state.record(RECORDS.backfillCursor)).toBeDefined();
    expect((await sp.state.meta())!.filledAt).toBeUndefined();
    const second = await runBackfill({ ...deps(s, sp), pageSize: 10 });
    expect(second.status).toBe('completed');
    expect(second.resumedFrom?.next).toBeGreaterThan(0);
    await expectEqualsTruth(sp, s);
  });

  it('retries transient BAPI failures and never logs secrets or e-mail addresses', async () => {
    const s = await sim({ faults: { errorRate: 0.3 } });
    s.store.seed({ organizations: 3, invitationsPerOrganization: 40 });
    const sp = space('flaky');
    const summary = await runBackfill({ ...deps(s, sp), pageSize: 10 });
    expect(summary.status).toBe('completed');
    expect(summary.retried).toBeGreaterThan(0);
    await expectEqualsTruth(sp, s);
    const all = lines.join('');
    expect(all).not.toContain(SECRET_KEY);
    expect(all).not.toMatch(/[a-z0-9.+-]+@[a-z0-9.-]+\.[a-z]{2,}/i);
  });
});
