import { isClerkAPIResponseError } from '@clerk/backend/errors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mirrorOver, type Mirror } from '../src/mirror/mirror.ts';
import { createReplica, type ReplicaMirror } from '../src/replica/create.ts';
import { tempDir } from './helpers/fixtures.ts';
import { settle, signed, startHarness, type Harness } from './helpers/pipeline.ts';

// Changes Clerk makes to invitations without an invitation event: an organization deleted
// (BAPI 404s its invitations from then on), a role renamed or a user changed (Clerk derives
// role_name and public_inviter_data when it reads). Every replica must follow, cheaply.
const tmp = tempDir();
let h: Harness;
let second: ReplicaMirror;
const GET_ORGANIZATION = 'GET /v1/organizations/:organization_id';
const GET_INVITATION = 'GET /v1/organizations/:organization_id/invitations/:invitation_id';
const LIST = 'GET /v1/organizations/:organization_id/invitations';

beforeAll(async () => {
  h = await startHarness({ name: 'indirect-changes', dir: tmp.path });
  second = await createReplica({ redisUrl: h.service.redisUrl!, keyPrefix: h.keys.prefix, path: ':memory:' });
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
    // The list, too, answers what BAPI now answers for it.
    const listed = await local.getOrganizationInvitationList({ organizationId: doomed.org, limit: 500 }).catch((e: unknown) => e);
    expect(isClerkAPIResponseError(listed) && listed.status === 404 && listed.errors[0]?.longMessage).toBe('Given organization not found.');
    // The other organization is untouched.
    expect(await found(local, kept.org, kept.ids)).toBe(6);
    expect(await found(second, kept.org, kept.ids)).toBe(6);
    const calls = h.sim.stats().byRoute;
    expect(calls[GET_ORGANIZATION]).toBe(1);
    expect(calls[GET_INVITATION] ?? 0).toBe(0);
    expect(h.logs()).toMatch(/organization deleted in Clerk: it and its invitations are tombstoned/);
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

describe('role.updated', () => {
  it("refreshes the renamed role's invitations in every replica, by list pages where that costs fewer calls", async () => {
    const many = h.sim.store.createOrganization().id;
    const few = h.sim.store.createOrganization().id;
    const admins = [
      ...Array.from({ length: 12 }, (_, i) => h.sim.store.createInvitation(many, { emailAddress: `admin${i}.many@example.com`, role: 'org:lead' })),
      h.sim.store.createInvitation(few, { emailAddress: 'admin.few@example.com', role: 'org:lead' }),
    ];
    const members = Array.from({ length: 5 }, (_, i) => h.sim.store.createInvitation(many, { emailAddress: `member${i}.many@example.com` }));
    await settle(h);
    const before = new Map(admins.map((a) => [a.id, a.updated_at]));
    h.sim.resetStats();

    h.sim.store.renameRole('org:lead', 'Team leads');
    await settle(h);
    const local = mirrorOver(h.service.mirror!);
    await waitFor(async () => (await second.getOrganizationInvitation({ organizationId: few, invitationId: admins.at(-1)!.id })).roleName === 'Team leads', 'the second replica');
    for (const m of [local, second]) {
      for (const a of admins) {
        const got = await m.getOrganizationInvitation({ organizationId: a.organization_id, invitationId: a.id });
        expect(got.roleName).toBe('Team leads');
        expect(got.updatedAt).toBe(before.get(a.id));
      }
      for (const inv of members) expect((await m.getOrganizationInvitation({ organizationId: many, invitationId: inv.id })).roleName).toBe('Member');
    }
    // One list page for the organization with twelve, one GET for the one with one: not thirteen GETs.
    const calls = h.sim.stats().byRoute;
    expect(calls[LIST]).toBe(1);
    expect(calls[GET_INVITATION]).toBe(1);
    expect(h.logs()).toMatch(/refreshed the invitations a changed role or user derives fields from/);
  });

  it("user.updated refreshes public_inviter_data of the invitations the user sent, and only those", async () => {
    const org = h.sim.store.createOrganization().id;
    const inviter = 'user_2sentInvitations0001';
    const sent = Array.from({ length: 4 }, (_, i) => h.sim.store.createInvitation(org, { emailAddress: `sent${i}@example.com`, inviterUserId: inviter }));
    const other = h.sim.store.createInvitation(org, { emailAddress: 'other@example.com', inviterUserId: 'user_2someoneElse000001' });
    await settle(h);
    h.sim.resetStats();
    h.sim.store.updateUser(inviter, { firstName: 'Ada', lastName: 'Lovelace' });
    await settle(h);
    const local = mirrorOver(h.service.mirror!);
    await waitFor(async () => ((await second.getOrganizationInvitation({ organizationId: org, invitationId: sent[0]!.id })).raw as { public_inviter_data?: { first_name?: string } }).public_inviter_data?.first_name === 'Ada', 'the second replica');
    for (const m of [local, second]) {
      for (const inv of sent) expect((await m.getOrganizationInvitation({ organizationId: org, invitationId: inv.id })).raw).toStrictEqual(h.sim.store.getInvitation(inv.id));
      expect((await m.getOrganizationInvitation({ organizationId: org, invitationId: other.id })).raw).toStrictEqual(h.sim.store.getInvitation(other.id));
    }
    expect(h.sim.stats().byRoute[LIST]).toBe(1);
    expect(h.sim.stats().byRoute[GET_INVITATION] ?? 0).toBe(0);
  });

  it('refuses a role or user event without a valid key or id, before the queue', async () => {
    const before = await h.queue.getJobCounts('waiting', 'delayed', 'active', 'completed', 'failed');
    for (const [type, data] of [
      ['role.updated', { object: 'role', name: 'x' }],
      ['role.deleted', { key: '../../etc' }],
      ['user.updated', { id: 'org_123' }],
      ['user.deleted', {}],
    ] as const) {
      const s = signed({ type, object: 'event', data });
      expect((await fetch(h.webhookUrl, { method: 'POST', headers: s.headers, body: s.body })).status, type).toBe(400);
    }
    expect(await h.queue.getJobCounts('waiting', 'delayed', 'active', 'completed', 'failed')).toStrictEqual(before);
  });
});
