import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BapiClient } from '../src/clerk/client.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import type { MirrorConnection } from '../src/mirror/open.ts';
import { DAY_MS } from '../src/simulator/model.ts';
import { startReconcileScheduler } from '../src/sync/jobs.ts';
import { SharedRateLimiter } from '../src/sync/rate-limiter.ts';
import { runReconcile, type DriftKind } from '../src/sync/reconcile.ts';
import { lastReconcileAtReader } from '../src/sync/state.ts';
import { tempDir } from './helpers/fixtures.ts';
import { SECRET_KEY, settle, startHarness, type Harness } from './helpers/pipeline.ts';

const REDIS_DB = 7;
const tmp = tempDir();
let h: Harness;
let redis: Redis;
let redisUrl: string;

beforeAll(async () => {
  h = await startHarness({
    redisDb: REDIS_DB,
    dir: tmp.path,
    // Clerk's worst: a fifth of the webhooks never arrive, the rest are reordered and duplicated.
    sim: { delivery: { dropRate: 0.2, duplicateRate: 0.5, reorderRate: 0.5, reorderWindowMs: 100 } },
    env: { BAPI_RATE_LIMIT: '1000' },
  });
  redisUrl = h.service.redisUrl!;
  redis = new Redis(redisUrl);
});
afterAll(async () => {
  await redis?.quit();
  await h?.stop();
  tmp.cleanup();
});

const log = createLogger({ level: 'silent' });
const conn = (): MirrorConnection => h.service.mirror!;
const deps = () => ({
  conn: conn(),
  bapi: new BapiClient({ apiUrl: h.sim.url, secretKey: SECRET_KEY, timeoutMs: 5000 }),
  limiter: new SharedRateLimiter({ connection: redis, rateLimit: { max: 1000, windowMs: 10_000 } }),
  log,
});

interface Row {
  id: string;
  status: string | null;
  updated_at: number;
  deleted_at: number | null;
  raw: string | null;
}
const allRows = () => conn().sqlite.prepare('SELECT id, status, updated_at, deleted_at, raw FROM organization_invitations ORDER BY id').all() as Row[];

function expectMirrorEqualsTruth() {
  const truth = h.sim.store.truth();
  const live = allRows().filter((r) => r.deleted_at === null);
  expect(live.map((r) => r.id).sort()).toEqual(truth.map((t) => t.id).sort());
  const byId = new Map(live.map((r) => [r.id, JSON.parse(r.raw!)]));
  for (const inv of truth) expect(byId.get(inv.id)).toStrictEqual(inv);
}

/** The drift a correct reconciliation must report, worked out from the mirror and the truth. */
function expectedDrift(): Record<DriftKind, number> {
  const truth = new Map(h.sim.store.truth().map((t) => [t.id, t]));
  const d: Record<DriftKind, number> = { missing: 0, outdated: 0, expired: 0, gone: 0 };
  const rows = new Map(allRows().map((r) => [r.id, r]));
  for (const [id, t] of truth) {
    const r = rows.get(id);
    if (!r || r.deleted_at !== null) d.missing++;
    else if (r.updated_at !== t.updated_at) d[r.status === 'pending' && t.status === 'expired' ? 'expired' : 'outdated']++;
  }
  for (const r of rows.values()) if (r.deleted_at === null && !truth.has(r.id)) d.gone++;
  return d;
}

describe('reconciliation', () => {
  it('after lost, reordered and duplicated webhooks and silent expiry, one run makes the mirror equal to Clerk, row for row', async () => {
    const store = h.sim.store;
    // Pre-existing invitations no webhook ever announced.
    store.seed({ organizations: 2, invitationsPerOrganization: 10 });
    const orgs = ['Alpha', 'Beta', 'Doomed'].map((name) => store.createOrganization({ name }));
    const invs = orgs.flatMap((org, o) =>
      Array.from({ length: 20 }, (_, i) => store.createInvitation(org.id, { emailAddress: `r${o}-${i}@example.com`, expiresInDays: i < 6 ? 1 : 30 })),
    );
    invs.forEach((inv, i) => (i % 5 === 1 ? store.acceptInvitation(inv.id) : i % 5 === 2 ? store.revokeInvitation(inv.id) : undefined));
    await settle(h);
    expect(h.sim.delivery.stats().dropped).toBeGreaterThan(0);
    expect(h.sim.delivery.stats().duplicated).toBeGreaterThan(0);

    // Changes Clerk announces with no webhook at all.
    store.advanceClock(2 * DAY_MS); // pending invitations of 1 day expire
    store.updateMetadata(invs[10]!.id, { publicMetadata: { changed: true } });
    store.deleteOrganization(orgs[2]!.id);

    const expected = expectedDrift();
    expect(expected.missing).toBeGreaterThan(20);
    expect(expected.expired).toBeGreaterThan(0);
    expect(expected.outdated).toBeGreaterThan(0);
    expect(expected.gone).toBeGreaterThan(0);

    // A dry run reports the same drift and writes nothing.
    const before = allRows();
    const dry = await runReconcile({ ...deps(), dryRun: true });
    expect(dry.status).toBe('completed');
    for (const k of Object.keys(expected) as DriftKind[]) expect(dry.drift[k]).toEqual({ found: expected[k], repaired: 0 });
    expect(allRows()).toEqual(before);
    expect(lastReconcileAtReader(conn())()).toBeUndefined();

    const t0 = Date.now();
    const report = await runReconcile(deps());
    expect(report.status).toBe('completed');
    for (const k of Object.keys(expected) as DriftKind[]) expect(report.drift[k]).toEqual({ found: expected[k], repaired: expected[k] });
    expectMirrorEqualsTruth();
    // The deleted organization's invitations are tombstones now.
    const doomed = new Set(invs.filter((i) => i.organization_id === orgs[2]!.id).map((i) => i.id));
    const tomb = allRows().filter((r) => doomed.has(r.id));
    expect(tomb.length).toBeGreaterThan(0);
    expect(tomb.every((r) => r.deleted_at !== null)).toBe(true);
    expect(lastReconcileAtReader(conn())()).toBeGreaterThanOrEqual(t0);

    const again = await runReconcile(deps());
    expect(Object.values(again.drift).every((d) => d.found === 0)).toBe(true);
    expect(again.refetched).toBe(0);
  });

  it('targeted mode re-fetches pending rows past expires_at and rows unconfirmed for too long, one request each', async () => {
    const store = h.sim.store;
    const org = store.createOrganization({ name: 'Targeted' });
    const soon = store.createInvitation(org.id, { emailAddress: 'soon@example.com', expiresInDays: 1 });
    await settle(h);
    store.advanceClock(2 * DAY_MS);
    h.sim.resetStats();
    // Our clock has not moved: nothing is past expiry yet and everything is fresh.
    const quiet = await runReconcile({ ...deps(), lists: false });
    expect(quiet.refetched).toBe(0);
    // With our clock past its expires_at, the pending row is suspect.
    const later = soon.expires_at! + 1000;
    const r = await runReconcile({ ...deps(), lists: false, maxAgeMs: 10 * DAY_MS, now: () => later });
    expect(r.mode).toBe('targeted');
    expect(r.drift.expired.found).toBe(1);
    expect(r.refetched).toBe(1);
    expect(h.sim.stats().getInvitationCalls[soon.id]).toBe(1);
    expect(JSON.parse(allRows().find((x) => x.id === soon.id)!.raw!).status).toBe('expired');
    // Unconfirmed for longer than maxAge: every live row is re-fetched.
    const live = allRows().filter((x) => x.deleted_at === null).length;
    const old = await runReconcile({ ...deps(), lists: false, maxAgeMs: 1000, now: () => later });
    expect(old.refetched).toBe(live);
  });

  it('runs as a BullMQ job scheduler and records the last successful run', async () => {
    const config = loadConfig({
      CLERK_SECRET_KEY: SECRET_KEY,
      CLERK_API_URL: h.sim.url,
      REDIS_URL: redisUrl,
      BAPI_RATE_LIMIT: '1000',
      RECONCILE_INTERVAL_MS: '60000',
    });
    const read = lastReconcileAtReader(conn());
    const before = read();
    expect(before).toBeDefined(); // the runs above recorded one (on the simulator's advanced clock)
    const startedAt = Date.now();
    // A restart soon after a run does not run again: the next one is due an interval after the last.
    const m = await startReconcileScheduler({ connection: redis, config, mirror: conn(), log });
    try {
      const schedulers = await m.queue.getJobSchedulers();
      expect(schedulers).toHaveLength(1);
      expect(schedulers[0]).toMatchObject({ key: 'reconcile', every: 60000 });
      expect(schedulers[0]!.next).toBeGreaterThanOrEqual(Math.min(before!, startedAt) + 59_000);
      await m.queue.removeJobScheduler('reconcile');
    } finally {
      await m.close();
    }
    // Overdue (a short interval, no schedule yet): it runs at once and records itself.
    const short = await startReconcileScheduler({ connection: redis, config: { ...config, reconcile: { ...config.reconcile, intervalMs: 1500 } }, mirror: conn(), log });
    try {
      const deadline = Date.now() + 15_000;
      while (read() === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(read()).not.toBe(before);
      expect(read()).toBeGreaterThanOrEqual(startedAt);
    } finally {
      await short.close();
    }
    // RECONCILE_INTERVAL_MS=0 removes the schedule (for every host sharing the Redis).
    const off = await startReconcileScheduler({ connection: redis, config: { ...config, reconcile: { ...config.reconcile, intervalMs: 0 } }, mirror: conn(), log });
    try {
      expect(await off.queue.getJobSchedulers()).toEqual([]);
    } finally {
      await off.close();
    }
  });
});
