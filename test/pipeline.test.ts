import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isClerkAPIResponseError } from '@clerk/backend/errors';
import { mirrorOver } from '../src/mirror/mirror.ts';
import { tempDir } from './helpers/fixtures.ts';
import { settle, signed, startHarness, type Harness } from './helpers/pipeline.ts';

const tmp = tempDir();
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ name: 'pipeline', dir: tmp.path });
});
afterAll(async () => {
  await h?.stop();
  tmp.cleanup();
});

function mirrorRows(): Map<string, Record<string, unknown>> {
  const rows = h.service.mirror!.sqlite.prepare('SELECT raw FROM organization_invitations WHERE deleted_at IS NULL').pluck().all() as string[];
  return new Map(rows.map((r) => [JSON.parse(r).id as string, JSON.parse(r)]));
}

function expectMirrorEqualsTruth() {
  const truth = h.sim.store.truth();
  const rows = mirrorRows();
  expect(rows.size).toBe(truth.length);
  for (const inv of truth) expect(rows.get(inv.id)).toStrictEqual(inv);
}

describe('sync pipeline', () => {
  it('signed Clerk events become mirror rows equal to BAPI, byte for byte', async () => {
    const org = h.sim.store.createOrganization({ name: 'Pipeline' });
    const created = Array.from({ length: 20 }, (_, i) => h.sim.store.createInvitation(org.id, { emailAddress: `p${i}@example.com` }));
    for (const inv of created.slice(0, 8)) h.sim.store.acceptInvitation(inv.id);
    for (const inv of created.slice(8, 12)) h.sim.store.revokeInvitation(inv.id);
    await settle(h);
    expectMirrorEqualsTruth();
    const stored = h.service.mirror!.sqlite.prepare('SELECT raw, source FROM organization_invitations WHERE id = ?').get(created[0]!.id) as { raw: string; source: string };
    expect(stored.source).toBe('webhook');
    // The row holds the exact bytes BAPI answered.
    const res = await fetch(`${h.sim.url}/v1/organizations/${org.id}/invitations/${created[0]!.id}`, { headers: { authorization: 'Bearer sk_test_pipelineTestKey0123456789' } });
    expect(stored.raw).toBe(await res.text());
  });

  it('a burst of 100 events for one invitation costs at most 2 BAPI calls', async () => {
    const org = h.sim.store.createOrganization({ name: 'Burst' });
    const inv = h.sim.store.createInvitation(org.id, { emailAddress: 'burst@example.com' });
    await settle(h);
    // A newer state whose own webhook is lost; the burst below all carries it.
    h.sim.delivery.removeEndpoint(h.webhookUrl);
    const accepted = h.sim.store.acceptInvitation(inv.id);
    h.sim.delivery.addEndpoint(h.webhookUrl);
    h.sim.resetStats();
    const event = { type: 'organizationInvitation.accepted', object: 'event', data: accepted, timestamp: Date.now() };
    const answers = await Promise.all(
      Array.from({ length: 100 }, () => {
        const s = signed(event);
        return fetch(h.webhookUrl, { method: 'POST', headers: s.headers, body: s.body }).then((r) => r.status);
      }),
    );
    expect(answers.every((s) => s === 200)).toBe(true);
    await settle(h);
    const calls = h.sim.stats().getInvitationCalls[inv.id] ?? 0;
    expect(calls).toBeGreaterThanOrEqual(1);
    expect(calls).toBeLessThanOrEqual(2);
    expectMirrorEqualsTruth();
  });

  it('a late event about a version the mirror already holds costs no BAPI call', async () => {
    const org = h.sim.store.createOrganization({ name: 'Late' });
    const inv = h.sim.store.createInvitation(org.id, { emailAddress: 'late@example.com' });
    const created = { ...inv };
    h.sim.store.acceptInvitation(inv.id);
    await settle(h);
    h.sim.resetStats();
    const skippedBefore = h.service.stats.jobs.skipped;
    // The `created` event again, long after the acceptance was synced (a Svix retry, say).
    const s = signed({ type: 'organizationInvitation.created', object: 'event', data: created, timestamp: Date.now() });
    expect((await fetch(h.webhookUrl, { method: 'POST', headers: s.headers, body: s.body })).status).toBe(200);
    await settle(h);
    expect(h.sim.stats().getInvitationCalls[inv.id] ?? 0).toBe(0);
    expect(h.service.stats.jobs.skipped).toBe(skippedBefore + 1);
    expectMirrorEqualsTruth();
    // A newer state is still fetched.
    const changed = h.sim.store.updateMetadata(inv.id, { publicMetadata: { seat: 2 } });
    const newer = signed({ type: 'organizationInvitation.accepted', object: 'event', data: { ...created, updated_at: changed.updated_at }, timestamp: Date.now() });
    await fetch(h.webhookUrl, { method: 'POST', headers: newer.headers, body: newer.body });
    await settle(h);
    expect(h.sim.stats().getInvitationCalls[inv.id]).toBe(1);
  });

  it('duplicated and reordered deliveries converge to BAPI', async () => {
    h.sim.delivery.setOptions({ duplicateRate: 0.5, reorderRate: 0.5, reorderWindowMs: 200 });
    try {
      const org = h.sim.store.createOrganization({ name: 'Chaos' });
      const invs = Array.from({ length: 30 }, (_, i) => h.sim.store.createInvitation(org.id, { emailAddress: `c${i}@example.com` }));
      invs.forEach((inv, i) => (i % 3 === 0 ? h.sim.store.acceptInvitation(inv.id) : i % 3 === 1 ? h.sim.store.revokeInvitation(inv.id) : undefined));
      await settle(h);
      expect(h.sim.delivery.stats().duplicated).toBeGreaterThan(0);
      expectMirrorEqualsTruth();
    } finally {
      h.sim.delivery.setOptions({ duplicateRate: 0, reorderRate: 0 });
    }
  });

  it('a 404 becomes a tombstone that the local lookup answers with 404', async () => {
    const org = h.sim.store.createOrganization({ name: 'Doomed' });
    const inv = h.sim.store.createInvitation(org.id, { emailAddress: 'doomed@example.com' });
    await settle(h);
    const lookup = mirrorOver(h.service.mirror!);
    expect((await lookup.getOrganizationInvitation({ organizationId: org.id, invitationId: inv.id })).id).toBe(inv.id);
    h.sim.store.deleteOrganization(org.id, { webhook: false });
    const s = signed({ type: 'organizationInvitation.revoked', object: 'event', data: { ...inv, status: 'revoked', updated_at: inv.updated_at + 1 } });
    expect((await fetch(h.webhookUrl, { method: 'POST', headers: s.headers, body: s.body })).status).toBe(200);
    await settle(h);
    const row = h.service.mirror!.sqlite.prepare('SELECT deleted_at FROM organization_invitations WHERE id = ?').get(inv.id) as { deleted_at: number | null };
    expect(row.deleted_at).not.toBeNull();
    const err = await lookup.getOrganizationInvitation({ organizationId: org.id, invitationId: inv.id }).catch((e: unknown) => e);
    expect(isClerkAPIResponseError(err) && err.status).toBe(404);
  });

  it('429s pause the queue and every job still finishes, none failed', async () => {
    h.sim.setRateLimit(5, 1000);
    try {
      // Let the window counting earlier requests end, so every window after t0 is this test's.
      await new Promise((r) => setTimeout(r, 1100));
      h.sim.resetStats();
      const t0 = h.sim.store.now();
      // One invitation per organization: no organization batch folds them into a page.
      for (let i = 0; i < 25; i++) h.sim.store.createInvitation(h.sim.store.createOrganization({ name: `Limited ${i}` }).id, { emailAddress: `l${i}@example.com` });
      await settle(h, 90_000);
      expect(h.sim.stats().rateLimited).toBeGreaterThan(0);
      const windows = h.sim.stats().rateWindows.filter((w) => w.startedAt >= t0);
      expect(windows.length).toBeGreaterThan(1);
      expect(Math.max(...windows.map((w) => w.accepted))).toBeLessThanOrEqual(5);
      expect(await h.queue.getJobCountByTypes('failed')).toBe(0);
      expectMirrorEqualsTruth();
    } finally {
      h.sim.setRateLimit(0);
    }
  });

  it('never logs the secret key, the signing secret or an e-mail address', () => {
    const logs = h.logs();
    expect(logs.length).toBeGreaterThan(0);
    expect(logs).not.toContain('sk_test_pipelineTestKey0123456789');
    expect(logs).not.toContain(process.env.X ?? 'whsec_');
    expect(logs).not.toMatch(/[a-z0-9]+@example\.com/);
  });
});
