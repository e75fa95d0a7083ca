import { isClerkAPIResponseError } from '@clerk/backend/errors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mirrorOver, type Mirror } from '../src/mirror/mirror.ts';
import { createReplica, type ReplicaMirror } from '../src/replica/create.ts';
import { tempDir } from './helpers/fixtures.ts';
import { settle, signed, startHarness, type Harness } from './helpers/pipeline.ts';

// Clerk sends organization.deleted and no event for the organization's invitations, which BAPI
// 404s from then on. Every replica must answer 404 for them too, for one BAPI call.
const tmp = tempDir();
let h: Harness;
let second: ReplicaMirror;
const GET_ORGANIZATION = 'GET /v1/organizations/:organization_id';
const GET_INVITATION = 'GET /v1/organizations/:organization_id/invitations/:invitation_id';

beforeAll(async () => {
  h = await startHarness({ redisDb: 13, dir: tmp.path });
  second = await createReplica({ redisUrl: h.service.redisUrl!, path: ':memory:' });
});
afterAll(async () => {
  await second?.close();
  await h?.stop();
  tmp.cleanup();
});

/** An organization with `n` invitations (a third accepted, a third revoked), synced everywhere. */
async function organizationWith(n: number): Promise<{ org: string; ids: string[] }> {
  const org = h.sim.store.createOrganization().id;
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const inv = h.sim.store.createInvitation(org, { emailAddress: `member${i}.${org.slice(-6).toLowerCase()}@example.com` });
    if (i % 3 === 1) h.sim.store.acceptInvitation(inv.id);
    if (i % 3 === 2) h.sim.store.revokeInvitation(inv.id);
    ids.push(inv.id);
  }
  await settle(h);
  return { org, ids };
}

async function found(mirror: Pick<Mirror, 'getOrganizationInvitation'>, organizationId: string, ids: string[]): Promise<number> {
  let n = 0;
  for (const invitationId of ids) {
    const got = await mirror.getOrganizationInvitation({ organizationId, invitationId }).catch((e: unknown) => e);
    if (!isClerkAPIResponseError(got)) n++;
    else expect(got.status).toBe(404);
  }
  return n;
}

async function waitFor(cond: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('organization.deleted', () => {
  it('tombstones every invitation of the organization in every replica, for one BAPI call', async () => {
    const doomed = await organizationWith(24);
    const kept = await organizationWith(6);
    const local = mirrorOver(h.service.mirror!);
    await waitFor(async () => (await found(second, doomed.org, doomed.ids)) === 24, 'the second replica to hold the invitations');
    expect(await found(local, doomed.org, doomed.ids)).toBe(24);
    h.sim.resetStats();

    h.sim.store.deleteOrganization(doomed.org);
    await settle(h);
    await waitFor(async () => (await found(second, doomed.org, doomed.ids)) === 0, 'the second replica to tombstone them');
    expect(await found(local, doomed.org, doomed.ids)).toBe(0);
    expect((await local.getOrganizationInvitationList({ organizationId: doomed.org, limit: 500 })).totalCount).toBe(0);
    // The other organization is untouched.
    expect(await found(local, kept.org, kept.ids)).toBe(6);
    expect(await found(second, kept.org, kept.ids)).toBe(6);
    const calls = h.sim.stats().byRoute;
    expect(calls[GET_ORGANIZATION]).toBe(1);
    expect(calls[GET_INVITATION] ?? 0).toBe(0);
    expect(h.logs()).toMatch(/organization deleted in Clerk: its invitations are tombstoned/);
  });

  it('changes nothing when Clerk still has the organization (a late, forged or mistaken event)', async () => {
    const alive = await organizationWith(5);
    h.sim.resetStats();
    const s = signed({ type: 'organization.deleted', object: 'event', data: { object: 'organization', id: alive.org, deleted: true } });
    expect((await fetch(h.webhookUrl, { method: 'POST', headers: s.headers, body: s.body })).status).toBe(200);
    await settle(h);
    expect(h.sim.stats().byRoute[GET_ORGANIZATION]).toBe(1);
    expect(await found(mirrorOver(h.service.mirror!), alive.org, alive.ids)).toBe(5);
    expect(await found(second, alive.org, alive.ids)).toBe(5);
  });

  it('refuses an organization.deleted without a valid organization id, before the queue', async () => {
    const before = await h.queue.getJobCounts('waiting', 'delayed', 'active', 'completed', 'failed');
    for (const data of [{ object: 'organization', deleted: true }, { id: '../org_x' }, { id: 'user_123' }]) {
      const s = signed({ type: 'organization.deleted', object: 'event', data });
      expect((await fetch(h.webhookUrl, { method: 'POST', headers: s.headers, body: s.body })).status).toBe(400);
    }
    expect(await h.queue.getJobCounts('waiting', 'delayed', 'active', 'completed', 'failed')).toStrictEqual(before);
  });
});
