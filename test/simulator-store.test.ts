import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createClerkClient } from '@clerk/backend';
import { isClerkAPIResponseError } from '@clerk/backend/errors';
import { Webhook } from 'svix';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, SimulatorStore, type Simulator } from '../src/simulator/index.ts';
import { fixture } from './helpers/fixtures.ts';

const secretKey = 'sk_test_simulatorStoreTestKey0123456789';
const signingSecret = `whsec_${Buffer.from('simulator-store-test-signing-secret').toString('base64')}`;
const DAY = 86_400_000;

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A real webhook endpoint that records what it receives and answers 204. */
async function receiver(): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/webhooks/clerk`, received, server };
}

/** Verifies like the mirror's receiver will, then parses. Throws on a bad signature. */
function verified(r: Received): { type: string; data: Record<string, unknown> } {
  new Webhook(signingSecret).verify(r.body, r.headers as Record<string, string>);
  return JSON.parse(r.body) as { type: string; data: Record<string, unknown> };
}

describe('simulator store and webhooks', () => {
  let sim: Simulator;
  let hook: Awaited<ReturnType<typeof receiver>>;
  let orgId: string;

  beforeAll(async () => {
    hook = await receiver();
    sim = await startSimulator({ secretKey, signingSecret, webhookUrls: [hook.url] });
  });
  afterAll(async () => {
    await sim.close();
    await new Promise((r) => hook.server.close(r));
  });
  afterEach(async () => {
    await sim.delivery.idle();
    hook.received.length = 0;
  });

  it('sends signed created, accepted and revoked webhooks with organization data', async () => {
    orgId = sim.store.createOrganization({ name: 'Analytical Engines' }).id;
    const a = sim.store.createInvitation(orgId, { emailAddress: 'ada@example.com', publicMetadata: { team: 'compilers' } });
    const b = sim.store.createInvitation(orgId, { emailAddress: 'grace@example.com' });
    sim.store.acceptInvitation(a.id, 'user_accepter');
    sim.store.revokeInvitation(b.id);
    await sim.delivery.idle();
    const events = hook.received.map(verified);
    expect(events.map((e) => `${e.type} ${String(e.data.id)}`).sort()).toEqual(
      [`organizationInvitation.created ${a.id}`, `organizationInvitation.created ${b.id}`, `organizationInvitation.accepted ${a.id}`, `organizationInvitation.revoked ${b.id}`].sort(),
    );
    const accepted = events.find((e) => e.type === 'organizationInvitation.accepted')!;
    const expectedKeys = Object.keys(fixture<{ data: object }>('webhook-organizationInvitation.accepted.json').data);
    expect(Object.keys(accepted.data)).toEqual(expect.arrayContaining(expectedKeys));
    expect(accepted.data).toMatchObject({ status: 'accepted', user_id: 'user_accepter', public_organization_data: { id: orgId, name: 'Analytical Engines' } });
    expect(accepted.data.updated_at).toBe(sim.store.getInvitation(a.id)!.updated_at);
    // A tampered body must not verify, or the check above proves nothing.
    expect(() => verified({ ...hook.received[0]!, body: hook.received[0]!.body.replace('organization_invitation', 'organization_invitatioN') })).toThrow();
  });

  it('bumps updated_at strictly on every change, even within one millisecond', () => {
    const org = sim.store.createOrganization().id;
    for (let i = 0; i < 50; i++) {
      const created = sim.store.createInvitation(org, { emailAddress: `burst${i}@example.com` });
      const changed = i % 2 ? sim.store.acceptInvitation(created.id) : sim.store.revokeInvitation(created.id);
      const meta = sim.store.updateMetadata(created.id, { publicMetadata: { i } });
      expect(changed.updated_at).toBeGreaterThan(created.updated_at);
      expect(meta.updated_at).toBeGreaterThan(changed.updated_at);
      expect(changed.created_at).toBe(created.created_at);
    }
  });

  it('refuses to change an invitation that is no longer pending', () => {
    const org = sim.store.createOrganization().id;
    const inv = sim.store.createInvitation(org, { emailAddress: 'once@example.com' });
    sim.store.revokeInvitation(inv.id);
    expect(() => sim.store.acceptInvitation(inv.id)).toThrow(/revoked/);
  });

  it('expires pending invitations when the clock passes expires_at, without a webhook', async () => {
    const org = sim.store.createOrganization().id;
    const soon = sim.store.createInvitation(org, { emailAddress: 'soon@example.com', expiresInDays: 1 });
    const later = sim.store.createInvitation(org, { emailAddress: 'later@example.com', expiresInDays: 30 });
    const done = sim.store.createInvitation(org, { emailAddress: 'done@example.com', expiresInDays: 1 });
    sim.store.acceptInvitation(done.id);
    await sim.delivery.idle();
    hook.received.length = 0;

    sim.store.advanceClock(2 * DAY);
    const expired = sim.store.getInvitation(soon.id)!;
    expect(expired.status).toBe('expired');
    expect(expired.updated_at).toBe(soon.expires_at);
    expect(sim.store.getInvitation(later.id)!.status).toBe('pending');
    expect(sim.store.getInvitation(done.id)!.status).toBe('accepted');

    // Clerk's API agrees with the store.
    const clerk = createClerkClient({ secretKey, apiUrl: sim.url });
    const viaApi = await clerk.organizations.getOrganizationInvitation({ organizationId: org, invitationId: soon.id });
    expect(viaApi.status).toBe('expired');
    await sim.delivery.idle();
    expect(hook.received).toHaveLength(0);
    expect(sim.delivery.stats().pending).toBe(0);
  });

  it('makes a deleted organization and its invitations 404, with organization.deleted and no invitation webhook', async () => {
    const org = sim.store.createOrganization().id;
    const inv = sim.store.createInvitation(org, { emailAddress: 'gone@example.com' });
    await sim.delivery.idle();
    hook.received.length = 0;
    sim.store.deleteOrganization(org);

    const clerk = createClerkClient({ secretKey, apiUrl: sim.url });
    for (const call of [
      () => clerk.organizations.getOrganizationInvitation({ organizationId: org, invitationId: inv.id }),
      () => clerk.organizations.getOrganizationInvitationList({ organizationId: org }),
    ]) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isClerkAPIResponseError(err) && err.status).toBe(404);
      // BAPI's own words for a missing organization.
      expect(isClerkAPIResponseError(err) && err.errors[0]?.longMessage).toBe('Given organization not found.');
    }
    expect(sim.store.truth().some((i) => i.id === inv.id)).toBe(false);
    const res = await fetch(`${sim.url}/v1/organization_invitations?limit=500`, { headers: { authorization: `Bearer ${secretKey}` } });
    const list = (await res.json()) as { data: { id: string }[] };
    expect(list.data.some((i) => i.id === inv.id)).toBe(false);
    await sim.delivery.idle();
    expect(hook.received.map((r) => JSON.parse(r.body) as { type: string; data: unknown })).toStrictEqual([
      expect.objectContaining({ type: 'organization.deleted', data: { object: 'organization', id: org, deleted: true } }),
    ]);
    // A lost webhook, for scenarios that need one.
    hook.received.length = 0;
    const other = sim.store.createOrganization().id;
    await sim.delivery.idle();
    hook.received.length = 0;
    sim.store.deleteOrganization(other, { webhook: false });
    await sim.delivery.idle();
    expect(hook.received).toHaveLength(0);
  });

  it('drives the same operations through the control API', async () => {
    const headers = { authorization: `Bearer ${secretKey}`, 'content-type': 'application/json' };
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${sim.url}/_control/${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      expect(res.headers.get('content-type')).toBe('application/json');
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    expect((await fetch(`${sim.url}/_control/truth`)).status).toBe(401);
    const seeded = await call('POST', 'seed', { organizations: 2, invitationsPerOrganization: 3 });
    const [org] = seeded.body.organizationIds as string[];
    const created = await call('POST', `organizations/${org}/invitations`, { emailAddress: 'ctl@example.com', role: 'org:admin' });
    expect(created.body).toMatchObject({ status: 'pending', role: 'org:admin' });
    const id = created.body.id as string;
    expect((await call('POST', `invitations/${id}/accept`, { userId: 'user_ctl' })).body.status).toBe('accepted');
    expect((await call('POST', `invitations/${id}/revoke`)).status).toBe(400);
    const idle = await call('POST', 'idle');
    expect(idle.body.pending).toBe(0);
    const truth = await call('GET', 'truth');
    expect((truth.body.data as { id: string }[]).some((i) => i.id === id)).toBe(true);
    expect((await call('PUT', 'faults', { errorRate: 2 })).status).toBe(422);
    expect((await call('PUT', 'faults', { latencyMs: 0, errorRate: 0 })).body).toMatchObject({ errorRate: 0 });
    expect((await call('POST', 'clock/advance', { ms: -1 })).status).toBe(422);
    expect((await call('DELETE', `organizations/${org}`)).status).toBe(200);
    expect((await call('GET', `invitations/${id}`)).status).toBe(404);
    expect((await call('GET', 'stats')).body).toHaveProperty('getInvitationCalls');
    expect((await call('POST', 'nope')).status).toBe(404);
  });
});

describe('SimulatorStore seeding', () => {
  it('generates the same instance under the same seed, with Clerk-looking ids and consistent statuses', () => {
    const a = new SimulatorStore({ seed: 7 });
    const b = new SimulatorStore({ seed: 7 });
    const c = new SimulatorStore({ seed: 8 });
    const [sa, sb, sc] = [a, b, c].map((s) => s.seed({ organizations: 3, invitationsPerOrganization: 40 }));
    expect(sa).toEqual(sb);
    expect(sa).not.toEqual(sc);
    const shape = (s: SimulatorStore) => s.truth().map((i) => [i.id, i.email_address, i.status, i.role]);
    expect(shape(a)).toEqual(shape(b));
    expect(sa!.invitationIds).toHaveLength(120);
    const now = a.now();
    for (const inv of a.truth()) {
      expect(inv.id).toMatch(/^orginv_[0-9A-Za-z]{27}$/);
      expect(inv.organization_id).toMatch(/^org_[0-9A-Za-z]{27}$/);
      expect(inv.updated_at).toBeGreaterThanOrEqual(inv.created_at);
      expect(inv.updated_at).toBeLessThanOrEqual(now);
      if (inv.status === 'pending') expect(inv.expires_at).toBeGreaterThan(now);
      if (inv.status === 'expired') expect(inv.updated_at).toBe(inv.expires_at);
    }
    expect(new Set(a.truth().map((i) => i.status))).toEqual(new Set(['pending', 'accepted', 'revoked', 'expired']));
  });
});
