import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BapiClient } from '../src/clerk/client.ts';
import { createLogger } from '../src/logger.ts';
import { migrateMirror } from '../src/mirror/migrate.ts';
import { openMirrorDb, type MirrorConnection } from '../src/mirror/open.ts';
import { startSimulator, type Simulator, type SimulatorOptions } from '../src/simulator/index.ts';
import { runBackfill } from '../src/sync/backfill.ts';
import { SharedRateLimiter } from '../src/sync/rate-limiter.ts';
import { STATE_KEYS, SyncState } from '../src/sync/state.ts';
import { tempDir } from './helpers/fixtures.ts';
import { isolatedRedisUrl, SECRET_KEY, SIGNING_SECRET } from './helpers/pipeline.ts';

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
const open: MirrorConnection[] = [];
const sims: Simulator[] = [];

beforeAll(async () => {
  redisUrl = await isolatedRedisUrl(6);
  redis = new Redis(redisUrl);
});
beforeEach(async () => {
  await redis.flushdb();
});
afterAll(async () => {
  for (const c of open) c.sqlite.close();
  for (const s of sims) await s.close();
  await redis?.quit();
  tmp.cleanup();
});

async function sim(opts: Partial<SimulatorOptions> = {}): Promise<Simulator> {
  const s = await startSimulator({ secretKey: SECRET_KEY, signingSecret: SIGNING_SECRET, rateLimit: 0, ...opts });
  sims.push(s);
  return s;
}

function mirror(name: string): MirrorConnection {
  const conn = openMirrorDb({ path: join(tmp.path, name) });
  migrateMirror(conn);
  open.push(conn);
  return conn;
}

function deps(s: Simulator, conn: MirrorConnection, rateLimit = { max: 100_000, windowMs: 10_000 }) {
  return {
    conn,
    bapi: new BapiClient({ apiUrl: s.url, secretKey: SECRET_KEY, timeoutMs: 5000 }),
    limiter: new SharedRateLimiter({ connection: redis, rateLimit }),
    log,
  };
}

/** Live rows, parsed, by id. */
function rows(conn: MirrorConnection): Map<string, unknown> {
  const raws = conn.sqlite.prepare('SELECT raw FROM organization_invitations WHERE deleted_at IS NULL').pluck().all() as string[];
  return new Map(raws.map((r) => [JSON.parse(r).id as string, JSON.parse(r)]));
}

function expectEqualsTruth(conn: MirrorConnection, s: Simulator) {
  const truth = s.store.truth();
  const got = rows(conn);
  expect(got.size).toBe(truth.length);
  for (const inv of truth) expect(got.get(inv.id)).toStrictEqual(inv);
}

/** Everything but our own clock (confirmed_at), row by row. */
function snapshot(conn: MirrorConnection) {
  return conn.sqlite.prepare('SELECT id, organization_id, status, expires_at, created_at, updated_at, deleted_at, source, raw FROM organization_invitations ORDER BY id').all();
}

describe('backfill', () => {
  it('pages the instance-wide list into the mirror in the single GET shape, one transaction per page', async () => {
    const s = await sim();
    s.store.seed({ organizations: 5, invitationsPerOrganization: 30 });
    const conn = mirror('instance.db');
    const first = await runBackfill({ ...deps(s, conn), pageSize: 20 });
    expect(first).toMatchObject({ status: 'completed', mode: 'instance', pages: 8, rows: { inserted: 150, updated: 0, unchanged: 0, stale: 0 }, rateLimited: 0 });
    // 8 pages and one single GET that probes which list fields the single GET lacks.
    expect(first.requests).toBe(9);
    expect(s.stats().byRoute['GET /v1/organization_invitations']).toBe(8);
    // public_organization_data is in the list items but not in the single GET: not stored.
    expectEqualsTruth(conn, s);
    expect(conn.sqlite.prepare("SELECT count(*) FROM organization_invitations WHERE source = 'backfill'").pluck().get()).toBe(150);
    expect(new SyncState(conn).get(STATE_KEYS.backfillCursor)).toBeUndefined();
    expect(new SyncState(conn).get(STATE_KEYS.backfillLast)).toBeDefined();

    const again = await runBackfill({ ...deps(s, conn), pageSize: 20 });
    expect(again.rows).toEqual({ inserted: 0, updated: 0, unchanged: 150, stale: 0 });
  });

  it('keeps public_organization_data when the single GET has it too', async () => {
    const s = await sim({ publicOrganizationDataOnGet: true });
    s.store.seed({ organizations: 2, invitationsPerOrganization: 5 });
    const conn = mirror('with-org-data.db');
    expect((await runBackfill({ ...deps(s, conn) })).status).toBe('completed');
    expectEqualsTruth(conn, s);
    expect([...rows(conn).values()].every((r) => (r as Record<string, unknown>).public_organization_data)).toBe(true);
  });

  it('falls back to organizations when the instance-wide list is 404, and under a 100-per-window limit no request is refused after the first 429', async () => {
    const s = await sim({ instanceListAvailable: false, rateLimit: 100, rateWindowMs: 2000 });
    s.store.seed({ organizations: 200, invitationsPerOrganization: 3 });
    const conn = mirror('fallback.db');
    // Another client of the same Clerk instance spends the whole window: our first call gets a 429.
    for (let i = 0; i < 100; i++) {
      await fetch(`${s.url}/v1/organizations?limit=1`, { headers: { authorization: `Bearer ${SECRET_KEY}` } }).then((r) => r.arrayBuffer());
    }
    s.resetStats();
    // 90% of the budget, as BAPI_RATE_LIMIT defaults to, over the simulator's window.
    const summary = await runBackfill({ ...deps(s, conn, { max: 90, windowMs: 2000 }), concurrency: 4 });
    expect(summary).toMatchObject({ status: 'completed', mode: 'organizations', rows: { inserted: 600 } });
    expectEqualsTruth(conn, s);

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

    const reference = mirror('uninterrupted.db');
    expect((await runBackfill({ ...deps(s, reference), pageSize: 10, concurrency: 2 })).status).toBe('completed');

    const path = join(tmp.path, 'killed.db');
    const killed = mirror('killed.db');
    const state = new SyncState(killed);
    const child = spawn(process.execPath, [BIN, 'backfill', '--page-size', '10', '--concurrency', '2'], {
      env: {
        PATH: process.env.PATH!,
        CLERK_SECRET_KEY: SECRET_KEY,
        CLERK_API_URL: s.url,
        REDIS_URL: redisUrl,
        MIRROR_DB_PATH: path,
        BAPI_RATE_LIMIT: '100000',
        LOG_LEVEL: 'warn',
      },
      stdio: 'ignore',
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    const deadline = Date.now() + 20_000;
    let at = 0;
    while (Date.now() < deadline) {
      at = state.get<{ position: { next: number } }>(STATE_KEYS.backfillCursor)?.value.position.next ?? 0;
      if (at >= 300) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    expect(at).toBeGreaterThanOrEqual(300);
    const before = killed.sqlite.prepare('SELECT count(*) FROM organization_invitations').pluck().get() as number;
    expect(before).toBeGreaterThanOrEqual(300);
    expect(before).toBeLessThan(1000);

    const resumed = await runBackfill({ ...deps(s, killed), pageSize: 10, concurrency: 2 });
    expect(resumed.status).toBe('completed');
    const saved = state.get<{ position: { next: number } }>(STATE_KEYS.backfillCursor);
    expect(saved).toBeUndefined();
    expect(resumed.resumedFrom?.next).toBeGreaterThanOrEqual(at);
    // It re-read at most the pages in flight when it was killed, never the whole list.
    expect(resumed.pages).toBeLessThanOrEqual(Math.ceil((1000 - resumed.resumedFrom!.next) / 10));
    expect(resumed.rows.inserted + resumed.rows.unchanged).toBe(1000 - resumed.resumedFrom!.next);
    expect(snapshot(killed)).toEqual(snapshot(reference));
    expectEqualsTruth(killed, s);
  });

  it('an aborted backfill stops, keeps its cursor and resumes', async () => {
    const s = await sim({ faults: { latencyMs: 10 } });
    s.store.seed({ organizations: 4, invitationsPerOrganization: 50 });
    const conn = mirror('aborted.db');
    const controller = new AbortController();
    let pages = 0;
    const first = await runBackfill({
      ...deps(s, conn),
      pageSize: 10,
      concurrency: 1,
      signal: controller.signal,
      progress: { update: () => void (++pages === 5 && controller.abort()), finish() {} },
    });
    expect(first.status).toBe('interrupted');
    expect(new SyncState(conn).get(STATE_KEYS.backfillCursor)).toBeDefined();
    const second = await runBackfill({ ...deps(s, conn), pageSize: 10 });
    expect(second.status).toBe('completed');
    expect(second.resumedFrom?.next).toBeGreaterThan(0);
    expectEqualsTruth(conn, s);
  });

  it('retries transient BAPI failures and never logs secrets or e-mail addresses', async () => {
    const s = await sim({ faults: { errorRate: 0.3 } });
    s.store.seed({ organizations: 3, invitationsPerOrganization: 40 });
    const conn = mirror('flaky.db');
    const summary = await runBackfill({ ...deps(s, conn), pageSize: 10 });
    expect(summary.status).toBe('completed');
    expect(summary.retried).toBeGreaterThan(0);
    expectEqualsTruth(conn, s);
    const all = lines.join('');
    expect(all).not.toContain(SECRET_KEY);
    expect(all).not.toMatch(/[a-z0-9.+-]+@[a-z0-9.-]+\.[a-z]{2,}/i);
  });
});
