import { isDeepStrictEqual } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BapiClient } from '../src/bapi/client.ts';
import { loadConfig } from '../src/config.ts';
import { createMetrics } from '../src/http/metrics.ts';
import { createLogger } from '../src/logger.ts';
import { PipelineStats } from '../src/stats.ts';
import { DAY_MS } from '../src/simulator/model.ts';
import { startMaintenance } from '../src/maintenance/jobs.ts';
import { SharedRateLimiter } from '../src/bapi/rate-limiter.ts';
import { lastReconcileAt, runReconcile, type DriftKind } from '../src/maintenance/reconcile.ts';
import { isEqualReport, verifyReplica } from '../src/replica/verify.ts';
import type { MirrorKeys } from '../src/state/keys.ts';
import { StatePublisher } from '../src/state/publisher.ts';
import { SharedState } from '../src/state/shared-state.ts';
import { tempDir } from './helpers/fixtures.ts';
import { SECRET_KEY, settle, startHarness, type Harness } from './helpers/pipeline.ts';

const tmp = tempDir();
let h: Harness;
let redis: Redis;
let redisUrl: string;

beforeAll(async () => {
  h = await startHarness({
    name: 'reconcile',
    dir: tmp.path,
    // Clerk's worst: a fifth of the webhooks never arrive, the rest are reordered and duplicated.
    sim: { delivery: { dropRate: 0.2, duplicateRate: 0.5, reorderRate: 0.5, reorderWindowMs: 100 } },
    env: { BAPI_RATE_LIMIT: '1000' },
  });
  redisUrl = h.service.redisUrl!;
  keys = h.keys;
  redis = new Redis(redisUrl);
  state = new SharedState(redis, keys);
});
afterAll(async () => {
  await redis?.quit();
  await h?.stop();
  tmp.cleanup();
});

const log = createLogger({ level: 'silent' });
let keys: MirrorKeys;
let state: SharedState;
const deps = () => ({
  state,
  publisher: new StatePublisher({ connection: redis, keys, retentionMs: 86_400_000 }),
  bapi: new BapiClient({ apiUrl: h.sim.url, secretKey: SECRET_KEY, timeoutMs: 5000 }),
  limiter: new SharedRateLimiter({ connection: redis, keys, rateLimit: { max: 1000, windowMs: 10_000 } }),
  log,
});

interface Row {
  id: string;
  status: string | null;
  updated_at: number;
  confirmed_at: number;
  deleted_at: boolean;
  raw: string | null;
}
async function allRows(): Promise<Row[]> {
  const out: Row[] = [];
  for await (const batch of state.scan()) {
    for (const s of batch) out.push({ id: s.id, status: s.fields.status, updated_at: s.updatedAt, confirmed_at: s.confirmedAt, deleted_at: s.deleted, raw: s.raw });
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

/** The shared state equals Clerk, and the service's replica has applied it, row for row. */
async function expectMirrorEqualsTruth() {
  const truth = h.sim.store.truth();
  const live = (await allRows()).filter((r) => !r.deleted_at);
  expect(live.map((r) => r.id).sort()).toEqual(truth.map((t) => t.id).sort());
  const byId = new Map(live.map((r) => [r.id, JSON.parse(r.raw!)]));
  for (const inv of truth) expect(byId.get(inv.id)).toStrictEqual(inv);
  await settle(h);
  expect(isEqualReport(await verifyReplica(h.service.mirror!, state))).toBe(true);
}

/** The drift a correct reconciliation must report, worked out from the shared state and the truth. */
async function expectedDrift(): Promise<Record<DriftKind, number>> {
  const truth = new Map(h.sim.store.truth().map((t) => [t.id, t]));
  const d: Record<DriftKind, number> = { missing: 0, outdated: 0, content: 0, expired: 0, gone: 0 };
  const rows = new Map((await allRows()).map((r) => [r.id, r]));
  for (const [id, t] of truth) {
    const r = rows.get(id);
    if (!r || r.deleted_at) d.missing++;
    else if (r.status === 'pending' && t.status === 'expired') d.expired++;
    else if (r.updated_at !== t.updated_at) d.outdated++;
    else if (!isDeepStrictEqual(JSON.parse(r.raw!), t)) d.content++;
  }
  for (const r of rows.values()) if (!r.deleted_at && !truth.has(r.id)) d.gone++;
  return d;
}

describe('reconciliation', () => {
  it('after lost, reordered and duplicated webhooks and silent expiry, one run makes the shared state and the replica equal to Clerk, row for row', async () => {
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
    store.deleteOrganization(orgs[2]!.id, { webhook: false });

    const expected = await expectedDrift();
    // At least the seeded ones (a lost webhook's invitation may have come with its organization's batch).
    expect(expected.missing).toBeGreaterThanOrEqual(20);
    expect(expected.expired).toBeGreaterThan(0);
    expect(expected.outdated).toBeGreaterThan(0);
    expect(expected.gone).toBeGreaterThan(0);

    // A dry run reports the same drift and writes nothing.
    const before = await allRows();
    const changesBefore = await redis.xlen(keys.changes);
    const dry = await runReconcile({ ...deps(), dryRun: true });
    expect(dry.status).toBe('completed');
    for (const k of Object.keys(expected) as DriftKind[]) expect(dry.drift[k]).toEqual({ found: expected[k], repaired: 0 });
    expect(await allRows()).toEqual(before);
    expect(await redis.xlen(keys.changes)).toBe(changesBefore);
    expect(await lastReconcileAt(state)).toBeUndefined();
    expect((await state.meta())!.filledAt).toBeUndefined();

    const t0 = Date.now();
    const report = await runReconcile(deps());
    expect(report.status).toBe('completed');
    for (const k of Object.keys(expected) as DriftKind[]) expect(report.drift[k]).toEqual({ found: expected[k], repaired: expected[k] });
    await expectMirrorEqualsTruth();
    // The deleted organization's invitations are tombstones now, in the replica too.
    const doomed = new Set(invs.filter((i) => i.organization_id === orgs[2]!.id).map((i) => i.id));
    const tomb = (await allRows()).filter((r) => doomed.has(r.id));
    expect(tomb.length).toBeGreaterThan(0);
    expect(tomb.every((r) => r.deleted_at)).toBe(true);
    const inReplica = h.service.mirror!.sqlite.prepare('SELECT count(*) FROM organization_invitations WHERE deleted_at IS NOT NULL AND id IN (SELECT value FROM json_each(?))').pluck().get(JSON.stringify([...doomed]));
    expect(inReplica).toBe(tomb.length);
    expect(await lastReconcileAt(state)).toBeGreaterThanOrEqual(t0);
    // A complete pass over the lists fills the state.
    expect((await state.meta())!.filledAt).toBeGreaterThanOrEqual(t0);

    const again = await runReconcile(deps());
    expect(Object.values(again.drift).every((d) => d.found === 0)).toBe(true);
    expect(again.refetched).toBe(0);
  });

  it('repairs what Clerk changed without moving updated_at (a renamed role, an undated expiry) and reports it as such', async () => {
    const store = h.sim.store;
    const org = store.createOrganization({ name: 'Undated' });
    const admins = Array.from({ length: 3 }, (_, i) => store.createInvitation(org.id, { emailAddress: `undated-admin${i}@example.com`, role: 'org:admin' }));
    const soon = store.createInvitation(org.id, { emailAddress: 'undated-soon@example.com' });
    await settle(h);
    // Some webhooks are dropped in this file: a first run brings every invitation in.
    await runReconcile(deps());
    const versions = new Map((await allRows()).map((r) => [r.id, r.updated_at]));
    store.expiryMovesUpdatedAt = false;
    try {
      store.renameRole('org:admin', 'Administrators');
      store.expireInvitation(soon.id);
      // Clerk's answers changed, their versions did not.
      for (const inv of [...admins, soon]) expect(store.getInvitation(inv.id)!.updated_at).toBe(versions.get(inv.id));
      const expected = await expectedDrift();
      expect(expected.content).toBeGreaterThanOrEqual(admins.length);
      expect(expected.expired).toBeGreaterThanOrEqual(1);

      const report = await runReconcile(deps());
      for (const k of Object.keys(expected) as DriftKind[]) expect(report.drift[k]).toEqual({ found: expected[k], repaired: expected[k] });
      await expectMirrorEqualsTruth();
      const rows = new Map((await allRows()).map((r) => [r.id, JSON.parse(r.raw!) as { role_name: string; status: string }]));
      for (const inv of admins) expect(rows.get(inv.id)!.role_name).toBe('Administrators');
      expect(rows.get(soon.id)!.status).toBe('expired');
      // Repaired once: the next run finds nothing and re-fetches nothing.
      const again = await runReconcile(deps());
      expect(Object.values(again.drift).every((d) => d.found === 0)).toBe(true);
    } finally {
      store.expiryMovesUpdatedAt = true;
    }
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
    expect(JSON.parse((await allRows()).find((x) => x.id === soon.id)!.raw!).status).toBe('expired');
    // Unconfirmed for longer than maxAge: every live row is re-fetched.
    const live = (await allRows()).filter((x) => !x.deleted_at).length;
    const old = await runReconcile({ ...deps(), lists: false, maxAgeMs: 1000, now: () => later });
    expect(old.refetched).toBe(live);
  });

  it('repairs an invitation it lists that the shared state holds as a tombstone with a version BAPI never gave, as missing drift', async () => {
    const store = h.sim.store;
    const org = store.createOrganization({ name: 'Poisoned' });
    const invs = [0, 1].map((i) => store.createInvitation(org.id, { emailAddress: `poisoned${i}@example.com` }));
    await settle(h);
    // Some webhooks are dropped in this file: a first run brings every invitation in.
    await runReconcile(deps());
    // What a signed event naming another organization left with releases before issue 16: a
    // tombstone at the event's updated_at, far in the future or merely newer than BAPI's.
    for (const [inv, version] of [
      [invs[0]!, 9_999_999_999_999],
      [invs[1]!, invs[1]!.updated_at + 60_000],
    ] as const) {
      const value = (await redis.hget(keys.snapshot, inv.id))!;
      expect(version).toBeGreaterThan(inv.updated_at);
      await redis.hset(keys.snapshot, inv.id, value.replace(/^\d+\|(\d+)\|0\|/, `${version}|$1|1|`));
    }
    const expected = await expectedDrift();
    expect(expected.missing).toBe(2);
    const report = await runReconcile(deps());
    for (const k of Object.keys(expected) as DriftKind[]) expect(report.drift[k]).toEqual({ found: expected[k], repaired: expected[k] });
    for (const inv of invs) expect(await state.get(inv.id)).toMatchObject({ deleted: false, updatedAt: inv.updated_at });
    await expectMirrorEqualsTruth();
    const again = await runReconcile(deps());
    expect(Object.values(again.drift).every((d) => d.found === 0)).toBe(true);
  });

  it('runs as a BullMQ job scheduler and records the last successful run', async () => {
    const config = loadConfig({
      CLERK_SECRET_KEY: SECRET_KEY,
      CLERK_API_URL: h.sim.url,
      ...h.redis.env,
      BAPI_RATE_LIMIT: '1000',
      RECONCILE_INTERVAL_MS: '60000',
    });
    const read = () => lastReconcileAt(state);
    const before = await read();
    expect(before).toBeDefined(); // the runs above recorded one (on the simulator's advanced clock)
    const startedAt = Date.now();
    // A restart soon after a run does not run again: the next one is due an interval after the last.
    const common = { connection: redis, keys, state, publisher: deps().publisher, log };
    const m = await startMaintenance({ ...common, config });
    try {
      const schedulers = await m.queue.getJobSchedulers();
      expect(schedulers).toHaveLength(1);
      expect(schedulers[0]).toMatchObject({ key: 'reconcile', every: 60000 });
      expect(schedulers[0]!.next).toBeGreaterThanOrEqual(Math.min(before!, startedAt) + 59_000);
      await m.queue.removeJobScheduler('reconcile');
    } finally {
      await m.close();
    }
    // Overdue (a short interval, no schedule yet): it runs at once and records itself, and
    // every BAPI request it sent is in /metrics, as the reconciliation's.
    const stats = new PipelineStats();
    await settle(h);
    // Invitations no webhook announced: drift the run finds and repairs, and /metrics counts.
    h.sim.store.seed({ organizations: 1, invitationsPerOrganization: 3 });
    h.sim.resetStats();
    const short = await startMaintenance({ ...common, stats, config: { ...config, reconcile: { ...config.reconcile, intervalMs: 1500 } } });
    try {
      const deadline = Date.now() + 15_000;
      while ((await read()) === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(await read()).not.toBe(before);
      expect(await read()).toBeGreaterThanOrEqual(startedAt);
    } finally {
      await short.close();
    }
    const sent = h.sim.stats().requests;
    expect(sent).toBeGreaterThan(0);
    expect(stats.bapiCalls({ caller: 'reconcile' })).toBe(sent);
    const text = await createMetrics({ stats, defaultMetrics: false }).render();
    expect(Number(/^clerk_mirror_bapi_requests_total\{caller="reconcile",status="200"\} (\d+)$/m.exec(text)?.[1])).toBe(stats.bapiCalls({ caller: 'reconcile', status: '200' }));
    expect(Number(/^clerk_mirror_drift_total\{kind="missing",action="found"\} (\d+)$/m.exec(text)?.[1])).toBe(3);
    expect(Number(/^clerk_mirror_drift_total\{kind="missing",action="repaired"\} (\d+)$/m.exec(text)?.[1])).toBe(3);
    expect(Number(/^clerk_mirror_drift_total\{kind="gone",action="found"\} (\d+)$/m.exec(text)?.[1])).toBe(0);
    // RECONCILE_INTERVAL_MS=0 removes the schedule (for every host sharing the Redis).
    const off = await startMaintenance({ ...common, config: { ...config, reconcile: { ...config.reconcile, intervalMs: 0 } } });
    try {
      expect(await off.queue.getJobSchedulers()).toEqual([]);
    } finally {
      await off.close();
    }
  });
});
