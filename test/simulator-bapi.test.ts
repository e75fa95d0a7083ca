import { createClerkClient } from '@clerk/backend';
import { isClerkAPIResponseError } from '@clerk/backend/errors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../src/simulator/index.ts';
import { fixture } from './helpers/fixtures.ts';

const secretKey = 'sk_test_simulatorBapiTestKey0123456789';
const signingSecret = `whsec_${Buffer.from('simulator-bapi-test-signing-secret').toString('base64')}`;

/** Runs `fn` and returns the ClerkAPIResponseError it throws (fails the test when it does not). */
async function clerkError(fn: () => Promise<unknown>) {
  const err = await fn().then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isClerkAPIResponseError(err)) throw new Error(`expected a ClerkAPIResponseError, got ${String(err)}`);
  return err;
}

describe('simulated BAPI through @clerk/backend', () => {
  let sim: Simulator;
  let clerk: ReturnType<typeof createClerkClient>;
  let orgId: string;
  const created: string[] = [];

  beforeAll(async () => {
    sim = await startSimulator({ secretKey, signingSecret, rateLimit: 0 });
    clerk = createClerkClient({ secretKey, apiUrl: sim.url });
    orgId = sim.store.createOrganization({ name: 'Analytical Engines' }).id;
    // One second apart so that every ordering has exactly one right answer.
    for (let i = 0; i < 25; i++) {
      created.push(sim.store.createInvitation(orgId, { emailAddress: `user${String(24 - i).padStart(2, '0')}@example.com` }).id);
      sim.store.advanceClock(1000);
    }
  });
  afterAll(() => sim.close());

  it('answers the single GET with exactly the keys of BAPI invitation JSON', async () => {
    const inv = await clerk.organizations.getOrganizationInvitation({ organizationId: orgId, invitationId: created[0]! });
    expect(Object.keys(inv.raw ?? {}).sort()).toEqual(Object.keys(fixture('organization-invitation.json')).sort());
    expect(inv).toMatchObject({ id: created[0], organizationId: orgId, status: 'pending', role: 'org:member', roleName: 'Member', emailAddress: 'user24@example.com' });
    expect(inv.raw).toEqual(sim.store.getInvitation(created[0]!));
  });

  it('answers with content-type exactly application/json', async () => {
    const res = await fetch(`${sim.url}/v1/organizations/${orgId}/invitations/${created[0]}`, { headers: { authorization: `Bearer ${secretKey}` } });
    expect(res.headers.get('content-type')).toBe('application/json');
    const missing = await fetch(`${sim.url}/v1/organizations/${orgId}/invitations/orginv_missing`, { headers: { authorization: `Bearer ${secretKey}` } });
    expect(missing.headers.get('content-type')).toBe('application/json');
  });

  it('throws a 404 ClerkAPIResponseError for a missing invitation, a missing organization and another organization', async () => {
    const other = sim.store.createOrganization().id;
    for (const [organizationId, invitationId] of [
      [orgId, 'orginv_doesnotexist'],
      ['org_doesnotexist', created[0]!],
      [other, created[0]!],
    ] as const) {
      const err = await clerkError(() => clerk.organizations.getOrganizationInvitation({ organizationId, invitationId }));
      expect(err.status).toBe(404);
      expect(err.errors[0]?.code).toBe('resource_not_found');
      expect(err.clerkTraceId).toMatch(/^[0-9a-f]{32}$/);
    }
  });

  it('refuses a wrong key with 401 clerk_key_invalid', async () => {
    const wrong = createClerkClient({ secretKey: 'sk_test_wrong', apiUrl: sim.url });
    const err = await clerkError(() => wrong.organizations.getOrganizationInvitation({ organizationId: orgId, invitationId: created[0]! }));
    expect(err.status).toBe(401);
    expect(err.errors[0]?.code).toBe('clerk_key_invalid');
  });

  it('lists 10 per page, newest first, by default', async () => {
    const page = await clerk.organizations.getOrganizationInvitationList({ organizationId: orgId });
    expect(page.totalCount).toBe(25);
    expect(page.data.map((i) => i.id)).toEqual([...created].reverse().slice(0, 10));
  });

  it('pages with limit and offset without overlap or gaps', async () => {
    const seen: string[] = [];
    for (let offset = 0; offset < 25; offset += 7) {
      const page = await clerk.organizations.getOrganizationInvitationList({ organizationId: orgId, limit: 7, offset });
      expect(page.totalCount).toBe(25);
      seen.push(...page.data.map((i) => i.id));
    }
    expect(seen).toEqual([...created].reverse());
    const all = await clerk.organizations.getOrganizationInvitationList({ organizationId: orgId, limit: 500 });
    expect(all.data).toHaveLength(25);
  });

  it('orders by order_by with an optional + or - prefix', async () => {
    // The SDK's params type lacks order_by, which BAPI accepts, so these go by hand.
    const ids = async (orderBy: string) => {
      const res = await fetch(`${sim.url}/v1/organizations/${orgId}/invitations?limit=500&order_by=${encodeURIComponent(orderBy)}`, { headers: { authorization: `Bearer ${secretKey}` } });
      expect(res.status).toBe(200);
      return ((await res.json()) as { data: { id: string; email_address: string }[] }).data;
    };
    expect((await ids('+created_at')).map((i) => i.id)).toEqual(created);
    expect((await ids('created_at')).map((i) => i.id)).toEqual(created);
    expect((await ids('-created_at')).map((i) => i.id)).toEqual([...created].reverse());
    const emails = (await ids('email_address')).map((i) => i.email_address);
    expect(emails[0]).toBe('user00@example.com');
    expect(emails).toEqual([...emails].sort());
    expect((await ids('-email_address')).map((i) => i.email_address)).toEqual([...emails].reverse());
  });

  it('filters by repeated status', async () => {
    sim.store.acceptInvitation(created[1]!);
    sim.store.acceptInvitation(created[2]!);
    sim.store.revokeInvitation(created[3]!);
    const page = await clerk.organizations.getOrganizationInvitationList({ organizationId: orgId, status: ['accepted', 'revoked'], limit: 500 });
    expect(page.totalCount).toBe(3);
    expect(new Set(page.data.map((i) => i.id))).toEqual(new Set([created[1], created[2], created[3]]));
    const pending = await clerk.organizations.getOrganizationInvitationList({ organizationId: orgId, status: ['pending'], limit: 500 });
    expect(pending.totalCount).toBe(22);
  });

  it('refuses out-of-range or malformed list params with 422 naming the param', async () => {
    const tooMany = await clerkError(() => clerk.organizations.getOrganizationInvitationList({ organizationId: orgId, limit: 501 }));
    expect(tooMany.status).toBe(422);
    expect(tooMany.errors[0]?.meta?.paramName).toBe('limit');
    // The SDK drops falsy params, so limit=0 is sent by hand.
    for (const [query, param] of [
      ['limit=0', 'limit'],
      ['limit=ten', 'limit'],
      ['offset=-1', 'offset'],
      ['status=sent', 'status'],
      ['order_by=updated_at', 'order_by'],
    ] as const) {
      const res = await fetch(`${sim.url}/v1/organizations/${orgId}/invitations?${query}`, { headers: { authorization: `Bearer ${secretKey}` } });
      expect(res.status, query).toBe(422);
      const body = (await res.json()) as { errors: { meta?: { param_name?: string } }[] };
      expect(body.errors[0]?.meta?.param_name, query).toBe(param);
    }
  });

  it('answers 404 for the list of an organization that does not exist', async () => {
    const err = await clerkError(() => clerk.organizations.getOrganizationInvitationList({ organizationId: 'org_nope' }));
    expect(err.status).toBe(404);
  });

  it('creates and revokes invitations through the SDK', async () => {
    const inv = await clerk.organizations.createOrganizationInvitation({
      organizationId: orgId,
      emailAddress: 'New.Person@example.com',
      role: 'org:admin',
      inviterUserId: 'user_inviter',
      publicMetadata: { team: 'x' },
    });
    expect(inv).toMatchObject({ status: 'pending', role: 'org:admin', roleName: 'Admin', emailAddress: 'new.person@example.com', publicMetadata: { team: 'x' } });
    expect(inv.raw).toMatchObject({ inviter_id: 'user_inviter', public_inviter_data: { user_id: 'user_inviter' } });
    const revoked = await clerk.organizations.revokeOrganizationInvitation({ organizationId: orgId, invitationId: inv.id, requestingUserId: 'user_inviter' });
    expect(revoked.status).toBe('revoked');
    expect(revoked.updatedAt).toBeGreaterThan(inv.updatedAt);
    const missingRole = await fetch(`${sim.url}/v1/organizations/${orgId}/invitations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secretKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ email_address: 'a@example.com' }),
    });
    expect(missingRole.status).toBe(422);
  });

  it('lists organizations and the whole instance, whose items carry public_organization_data', async () => {
    const orgs = await clerk.organizations.getOrganizationList({ limit: 1 });
    expect(orgs.totalCount).toBeGreaterThanOrEqual(2);
    expect(orgs.data).toHaveLength(1);
    const res = await fetch(`${sim.url}/v1/organization_invitations?limit=500&status=pending&query=USER0`, { headers: { authorization: `Bearer ${secretKey}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { data: Record<string, unknown>[]; total_count: number };
    expect(body.total_count).toBe(10); // user00…user09, all still pending; the match is case-insensitive
    for (const item of body.data) {
      expect(item.status).toBe('pending');
      expect(item.public_organization_data).toMatchObject({ id: orgId, name: 'Analytical Engines' });
    }
  });

  it('can switch the instance-wide list off', async () => {
    sim.store.instanceListAvailable = false;
    try {
      const res = await fetch(`${sim.url}/v1/organization_invitations`, { headers: { authorization: `Bearer ${secretKey}` } });
      expect(res.status).toBe(404);
    } finally {
      sim.store.instanceListAvailable = true;
    }
  });
});

describe('public_organization_data on the single GET', () => {
  it('is left out by default and added when publicOrganizationDataOnGet is set', async () => {
    for (const publicOrganizationDataOnGet of [false, true]) {
      const sim = await startSimulator({ secretKey, signingSecret, publicOrganizationDataOnGet });
      try {
        const org = sim.store.createOrganization({ name: 'Difference Engines' });
        const inv = sim.store.createInvitation(org.id, { emailAddress: 'charles@example.com' });
        const clerk = createClerkClient({ secretKey, apiUrl: sim.url });
        const got = await clerk.organizations.getOrganizationInvitation({ organizationId: org.id, invitationId: inv.id });
        expect(got.raw && 'public_organization_data' in got.raw).toBe(publicOrganizationDataOnGet);
        if (publicOrganizationDataOnGet) expect(got.publicOrganizationData).toMatchObject({ id: org.id, name: 'Difference Engines' });
      } finally {
        await sim.close();
      }
    }
  });
});
