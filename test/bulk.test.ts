import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mirrorOver, type Mirror } from '../src/mirror/mirror.ts';
import { createReplica, type ReplicaMirror } from '../src/replica/create.ts';
import { tempDir } from './helpers/fixtures.ts';
import { settle, startHarness, type Harness } from './helpers/pipeline.ts';

// A bulk invite (Clerk's bulk endpoint, or a script) in one organization, at a development
// key's limit: the organization's list pages carry it, not a GET per invitation.
const tmp = tempDir();
let h: Harness;
let second: ReplicaMirror;
const BULK = 1000;

beforeAll(async () => {
  // A coalescing window far longer than any wait below: an event alone that waited for it
  // would not be visible in time (the leading edge).
  h = await startHarness({ name: 'bulk', dir: tmp.path, sim: { rateLimit: 100, rateWindowMs: 10_000 }, coalesceMs: 60_000 });
  second = await createReplica({ redisUrl: h.service.redisUrl!, keyPrefix: h.keys.prefix, path: ':memory:' });
});
afterAll(async () => {
  await second?.close();
  await h?.stop();
  tmp.cleanup();
});

async function allOf(m: Pick<Mirror, 'getOrganizationInvitationList'>, organizationId: string) {
  const out = [];
  for (let offset = 0; ; offset += 500) {
    const page = await m.getOrganizationInvitationList({ organizationId, limit: 500, offset, orderBy: '+created_at' });
    out.push(...page.data.map((i) => ({ ...i })));
    if (offset + 500 >= page.totalCount) return out;
  }
}

describe('a bulk invite', () => {
  it(`${BULK} new invitations of one organization announced at once: every replica has them, for at most 10 BAPI calls and no 429`, { timeout: 120_000 }, async () => {
    const org = h.sim.store.createOrganization({ name: 'Bulk' }).id;
    h.sim.resetStats();
    for (let i = 0; i < BULK; i++) h.sim.store.createInvitation(org, { emailAddress: `bulk${i}@example.com` });
    await settle(h, 90_000);
    const truth = h.sim.store.truth().filter((i) => i.organization_id === org);
    expect(truth).toHaveLength(BULK);
    const sdkShape = await allOf(mirrorOver(h.service.mirror!), org);
    expect(sdkShape).toHaveLength(BULK);
    const deadline = Date.now() + 15_000;
    while ((await second.getOrganizationInvitationList({ organizationId: org })).totalCount < BULK && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await allOf(second, org)).toStrictEqual(sdkShape);
    // The same bytes as Clerk's own answers, invitation by invitation.
    const byId = new Map(truth.map((i) => [i.id, i]));
    for (const got of sdkShape) expect(got.updatedAt).toBe(byId.get(got.id)!.updated_at);
    const stats = h.sim.stats();
    expect(stats.rateLimited).toBe(0);
    expect(stats.requests).toBeLessThanOrEqual(10);
    expect(h.logs()).not.toMatch(/BAPI answered 429/);
  });

  it('an invitation created alone in that organization afterwards is fetched at once and on its own, without waiting for a window or a batch', async () => {
    const org = h.sim.store.truth()[0]!.organization_id;
    // Past the window in which announcements count as one burst.
    await new Promise((r) => setTimeout(r, 1200));
    const deferred = h.service.stats.jobs.deferred;
    h.sim.resetStats();
    const inv = h.sim.store.createInvitation(org, { emailAddress: 'alone@example.com' });
    expect(await waitForId(inv.id, org)).toBe(inv.id);
    await settle(h);
    expect(h.sim.stats().byRoute).toEqual({ 'GET /v1/organizations/:organization_id/invitations/:invitation_id': 1 });
    expect(h.service.stats.jobs.deferred).toBe(deferred);
  });
});

async function waitForId(invitationId: string, organizationId: string): Promise<string> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const got = await second.getOrganizationInvitation({ organizationId, invitationId }).catch(() => undefined);
    if (got) return got.id;
    if (Date.now() > deadline) throw new Error('the second replica never had it');
    await new Promise((r) => setTimeout(r, 50));
  }
}
