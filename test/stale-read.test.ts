import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mirrorOver } from '../src/mirror/mirror.ts';
import { tempDir } from './helpers/fixtures.ts';
import { SECRET_KEY, settle, startHarness, type Harness } from './helpers/pipeline.ts';

// Whether a BAPI GET right after a webhook can answer the state before it is unconfirmed; the
// simulator's readLagMs makes it so. The worker must fetch again for a bounded time, then
// settle on the newest answer, and count both.
const tmp = tempDir();
let h: Harness;
const WAIT_MS = 1500;

beforeAll(async () => {
  h = await startHarness({ name: 'stale-read', dir: tmp.path, env: { STALE_READ_WAIT_MS: String(WAIT_MS) }, sim: { readLagMs: 700 } });
});
afterAll(async () => {
  await h?.stop();
  tmp.cleanup();
});

const GET_INVITATION = 'GET /v1/organizations/:organization_id/invitations/:invitation_id';

async function pending(): Promise<{ organizationId: string; invitationId: string }> {
  const org = h.sim.store.createOrganization().id;
  const inv = h.sim.store.createInvitation(org, { emailAddress: `lagging.${org.slice(-6).toLowerCase()}@example.com` });
  await settle(h);
  return { organizationId: org, invitationId: inv.id };
}

async function metric(name: string, outcome: string): Promise<number> {
  const text = await (await fetch(`${h.service.url}/metrics`, { headers: { authorization: `Bearer ${SECRET_KEY}` } })).text();
  return Number(new RegExp(`^${name}\\{outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text)?.[1]);
}

describe('BAPI answering an older state than the webhook announced', () => {
  it('fetches again after a backoff and publishes the announced state once BAPI has it', async () => {
    const params = await pending();
    h.sim.resetStats();
    h.sim.store.acceptInvitation(params.invitationId);
    await settle(h);
    expect((await mirrorOver(h.service.mirror!).getOrganizationInvitation(params)).status).toBe('accepted');
    expect(h.service.stats.staleReads.retried).toBeGreaterThanOrEqual(1);
    expect(h.service.stats.staleReads.settled).toBe(0);
    expect(h.sim.stats().byRoute[GET_INVITATION]).toBeGreaterThanOrEqual(2);
    expect(await metric('clerk_mirror_bapi_stale_reads_total', 'retried')).toBe(h.service.stats.staleReads.retried);
    expect(await h.queue.getJobCounts('failed')).toStrictEqual({ failed: 0 });
  });

  it('stops waiting after STALE_READ_WAIT_MS and publishes the newest answer, at a bounded cost', async () => {
    const params = await pending();
    const retriedBefore = h.service.stats.staleReads.retried;
    h.sim.store.readLagMs = 60_000;
    try {
      h.sim.resetStats();
      const t0 = Date.now();
      h.sim.store.acceptInvitation(params.invitationId);
      await settle(h);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(WAIT_MS);
      // What BAPI kept answering: the mirror holds Clerk's newest answer, not a guess.
      expect((await mirrorOver(h.service.mirror!).getOrganizationInvitation(params)).status).toBe('pending');
      expect(h.service.stats.staleReads.settled).toBe(1);
      expect(h.service.stats.staleReads.retried).toBeGreaterThan(retriedBefore);
      expect(h.sim.stats().byRoute[GET_INVITATION]).toBeLessThanOrEqual(4);
      expect(await metric('clerk_mirror_bapi_stale_reads_total', 'settled')).toBe(1);
      expect(h.logs()).toMatch(/BAPI kept answering an older state than the webhook announced/);
      expect(await h.queue.getJobCounts('failed')).toStrictEqual({ failed: 0 });
    } finally {
      h.sim.store.readLagMs = 700;
    }
  });
});
