import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mirrorOver } from '../src/mirror/mirror.ts';
import { createReplica, type ReplicaMirror } from '../src/replica/create.ts';
import { tempDir } from './helpers/fixtures.ts';
import { createLogger } from '../src/logger.ts';
import type { InvitationJobData } from '../src/queue/job.ts';
import { ExpirySweeper } from '../src/worker/expiry.ts';
import { invitation } from './helpers/fixtures.ts';
import { settle, startHarness, type Harness } from './helpers/pipeline.ts';
import { stateSpace, testRedis } from './helpers/state.ts';

// Clerk sends no event when an invitation expires, and whether it moves updated_at then is
// unconfirmed. Every replica must say `expired` within seconds of expires_at either way.
const tmp = tempDir();
let h: Harness;
let second: ReplicaMirror;
let redis: Redis;
const EXPIRES_IN_MS = 2500;

beforeAll(async () => {
  h = await startHarness({ name: 'expiry', dir: tmp.path });
  second = await createReplica({ redisUrl: h.service.redisUrl!, keyPrefix: h.keys.prefix, path: ':memory:' });
  redis = new Redis(h.service.redisUrl!);
});
afterAll(async () => {
  await redis?.quit();
  await second?.close();
  await h?.stop();
  tmp.cleanup();
});

async function statusIn(mirror: Pick<ReplicaMirror, 'getOrganizationInvitation'>, organizationId: string, invitationId: string): Promise<string> {
  return (await mirror.getOrganizationInvitation({ organizationId, invitationId })).status ?? '';
}

describe.each([
  ['moves updated_at', true],
  ['keeps updated_at', false],
])('an invitation expiring (Clerk %s)', (_name, moves) => {
  it('reads expired in every replica within seconds of expires_at, for one more BAPI call, without a webhook', async () => {
    h.sim.store.expiryMovesUpdatedAt = moves;
    try {
      const org = h.sim.store.createOrganization().id;
      const expiring = Array.from({ length: 3 }, (_, i) => h.sim.store.createInvitation(org, { emailAddress: `expiring${i}@example.com`, expiresInMs: EXPIRES_IN_MS }));
      const accepted = h.sim.store.createInvitation(org, { emailAddress: 'accepted-first@example.com', expiresInMs: EXPIRES_IN_MS });
      h.sim.store.acceptInvitation(accepted.id);
      await settle(h);
      const local = mirrorOver(h.service.mirror!);
      for (const inv of expiring) expect(await statusIn(local, org, inv.id)).toBe('pending');
      const members = await redis.zrange(h.keys.expiries, '0', '-1');
      for (const inv of expiring) expect(members).toContain(`${org}/${inv.id}`);
      // An accepted invitation has no expiry left to wait for.
      expect(members).not.toContain(`${org}/${accepted.id}`);
      const callsBefore = { ...h.sim.stats().getInvitationCalls };

      const deadline = expiring[0]!.expires_at! + 6000;
      for (;;) {
        const states = await Promise.all(expiring.flatMap((inv) => [statusIn(local, org, inv.id), statusIn(second, org, inv.id)]));
        if (states.every((s) => s === 'expired')) break;
        expect(Date.now(), `still ${states.join(',')} 6 s after expires_at`).toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 100));
      }
      await settle(h);
      const calls = h.sim.stats().getInvitationCalls;
      for (const inv of expiring) {
        expect((calls[inv.id] ?? 0) - (callsBefore[inv.id] ?? 0)).toBe(1);
        expect((await local.getOrganizationInvitation({ organizationId: org, invitationId: inv.id })).raw).toStrictEqual(h.sim.store.getInvitation(inv.id));
      }
      expect(calls[accepted.id]).toBe(callsBefore[accepted.id]);
      expect(await statusIn(local, org, accepted.id)).toBe('accepted');
      expect(await redis.zrange(h.keys.expiries, '0', '-1')).not.toContain(`${org}/${expiring[0]!.id}`);
    } finally {
      h.sim.store.expiryMovesUpdatedAt = true;
    }
  });
});

describe('the expiry sweeper', () => {
  it('takes each due expiry once, however many sweep, and puts it back when the re-fetch cannot be queued', async () => {
    const r = testRedis();
    try {
      const { state, publisher, keys } = stateSpace(r, 'expiry');
      const at = Date.now() + 300;
      const invs = Array.from({ length: 40 }, (_, i) => invitation({ id: `orginv_sweep${i}`, status: 'pending', expires_at: at }));
      await publisher.publish(invs.map((inv) => ({ kind: 'present', invitation: inv, observedAt: Date.now(), source: 'webhook' })));
      // Accepted before it expired: nothing to re-fetch.
      await publisher.publish([{ kind: 'present', invitation: { ...invs[0]!, status: 'accepted', updated_at: invs[0]!.updated_at + 1 }, observedAt: Date.now(), source: 'webhook' }]);
      expect(await r.zcard(keys.expiries)).toBe(39);
      const log = createLogger({ level: 'silent' });
      const failing = new ExpirySweeper({ state, log, graceMs: 0, enqueue: async () => Promise.reject(new Error('Redis refused')) });
      expect(await failing.sweep()).toBe(0);
      await new Promise((res) => setTimeout(res, at - Date.now() + 20));
      expect(await failing.sweep()).toBe(0);
      expect(await r.zcard(keys.expiries)).toBe(39);

      const queued: InvitationJobData[] = [];
      const sweepers = Array.from({ length: 3 }, () => new ExpirySweeper({ state, log, graceMs: 0, batch: 7, enqueue: async (job) => void queued.push(job) }));
      const counts = await Promise.all(sweepers.map((s) => s.sweep()));
      expect(counts.reduce((a, b) => a + b, 0)).toBe(39);
      expect(new Set(queued.map((j) => j.invitationId)).size).toBe(39);
      expect(queued.every((j) => j.reason === 'expiry' && j.organizationId === invs[1]!.organization_id)).toBe(true);
      expect(await r.zcard(keys.expiries)).toBe(0);
    } finally {
      await r.quit();
    }
  });
});
