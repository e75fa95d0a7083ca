import { isClerkAPIResponseError } from '@clerk/backend/errors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mirrorOver, MirrorBehindError } from '../src/mirror/mirror.ts';
import { createReplica, type ReplicaMirror } from '../src/replica/create.ts';
import { tempDir } from './helpers/fixtures.ts';
import { SECRET_KEY, settle, startHarness, type Harness } from './helpers/pipeline.ts';

// Freshness for callers: a lookup of an invitation the mirror has not seen yet (its webhook
// is late or lost) asks Clerk, within a cap, and tells where its answer came from.
const tmp = tempDir();
let h: Harness;
let library: ReplicaMirror;
let org: string;
const CAP = 5;
/** A short budget window, so a test can wait for the next one. */
const WINDOW_MS = 2000;
const GET = 'GET /v1/organizations/:organization_id/invitations/:invitation_id';

beforeAll(async () => {
  h = await startHarness({ name: 'read-through', dir: tmp.path, env: { READ_THROUGH: '1', READ_THROUGH_LIMIT: String(CAP), BAPI_RATE_WINDOW_MS: String(WINDOW_MS) } });
  library = await createReplica({
    redisUrl: h.service.redisUrl!,
    keyPrefix: h.keys.prefix,
    path: ':memory:',
    readThrough: { secretKey: SECRET_KEY, apiUrl: h.sim.url, maxPerWindow: CAP, rateLimit: { max: 30, windowMs: WINDOW_MS } },
  });
  org = h.sim.store.createOrganization({ name: 'Fresh' }).id;
  h.sim.store.createInvitation(org, { emailAddress: 'known@example.com' });
  await settle(h);
});
afterAll(async () => {
  await library?.close();
  await h?.stop();
  tmp.cleanup();
});

/** Each window of the cap starts clean. */
const nextWindow = () => new Promise((r) => setTimeout(r, WINDOW_MS + 100));

const read = (invitationId: string) =>
  fetch(`${h.service.url}/v1/organizations/${org}/invitations/${invitationId}`, { headers: { authorization: `Bearer ${SECRET_KEY}` } });

describe('read-through', () => {
  it('answers a just-created invitation on the first lookup, from Clerk, and publishes it for every replica', async () => {
    h.sim.delivery.removeEndpoint(h.webhookUrl);
    const inv = h.sim.store.createInvitation(org, { emailAddress: 'first.lookup@example.com' });
    const viaApi = await read(inv.id);
    expect(viaApi.status).toBe(200);
    expect(viaApi.headers.get('x-mirror-source')).toBe('clerk');
    const truth = await fetch(`${h.sim.url}/v1/organizations/${org}/invitations/${inv.id}`, { headers: { authorization: `Bearer ${SECRET_KEY}` } });
    expect(await viaApi.text()).toBe(await truth.text());
    // Published: the replicas get it without a webhook, and then answer it themselves.
    await settle(h);
    const again = await read(inv.id);
    expect(again.headers.get('x-mirror-source')).toBeNull();
    const deadline = Date.now() + 10_000;
    let got = await library.lookupOrganizationInvitation({ organizationId: org, invitationId: inv.id });
    while (got.source !== 'mirror' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      got = await library.lookupOrganizationInvitation({ organizationId: org, invitationId: inv.id });
    }
    expect(got).toMatchObject({ source: 'mirror', invitation: { id: inv.id, emailAddress: 'first.lookup@example.com' } });
    h.sim.delivery.addEndpoint(h.webhookUrl);
  });

  it(`10,000 lookups of unknown ids cost at most ${CAP} BAPI calls, and a 404 is remembered`, { timeout: 60_000 }, async () => {
    await nextWindow();
    h.sim.resetStats();
    const ids = Array.from({ length: 10_000 }, (_, i) => `orginv_2unknown${String(i).padStart(12, '0')}`);
    let missing = 0;
    for (let i = 0; i < ids.length; i += 500) {
      const answers = await Promise.all(ids.slice(i, i + 500).map((invitationId) => library.getOrganizationInvitation({ organizationId: org, invitationId }).catch((e: unknown) => e)));
      missing += answers.filter((a) => isClerkAPIResponseError(a) && a.status === 404).length;
    }
    expect(missing).toBe(ids.length);
    const calls = h.sim.stats().byRoute[GET] ?? 0;
    expect(calls).toBeGreaterThan(0);
    expect(calls).toBeLessThanOrEqual(CAP);
    // The ids Clerk answered 404 for are not asked again, even in a new window.
    await nextWindow();
    h.sim.resetStats();
    for (const invitationId of ids.slice(0, 50)) await library.getOrganizationInvitation({ organizationId: org, invitationId }).catch(() => undefined);
    expect(h.sim.stats().byRoute[GET] ?? 0).toBeLessThanOrEqual(50 - calls);
  });

  it('minUpdatedAt: an older state counts as a miss, asked of Clerk with read-through, MirrorBehindError without', async () => {
    const inv = h.sim.store.createInvitation(org, { emailAddress: 'newer@example.com' });
    await settle(h);
    const held = await library.getOrganizationInvitation({ organizationId: org, invitationId: inv.id });
    // A change whose webhook has not come yet.
    h.sim.delivery.removeEndpoint(h.webhookUrl);
    const accepted = h.sim.store.acceptInvitation(inv.id);
    await nextWindow();
    const got = await library.lookupOrganizationInvitation({ organizationId: org, invitationId: inv.id }, { minUpdatedAt: accepted.updated_at });
    expect(got).toMatchObject({ source: 'clerk', invitation: { status: 'accepted', updatedAt: accepted.updated_at } });
    h.sim.delivery.addEndpoint(h.webhookUrl);

    const plain = mirrorOver(h.service.mirror!);
    const err = await plain.getOrganizationInvitation({ organizationId: org, invitationId: inv.id }, { minUpdatedAt: accepted.updated_at + 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MirrorBehindError);
    expect(held.updatedAt).toBeLessThan(accepted.updated_at);
  });
});
