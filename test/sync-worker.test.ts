import { afterAll, expect, inject, it } from 'vitest';
import { BapiClient } from '../src/bapi/client.ts';
import { createLogger } from '../src/logger.ts';
import type { InvitationJobData } from '../src/queue/job.ts';
import { AnnouncedVersions } from '../src/queue/announced.ts';
import { SyncQueue } from '../src/queue/sync-queue.ts';
import { connectRedis } from '../src/redis/connection.ts';
import { startSimulator, type Simulator } from '../src/simulator/index.ts';
import { PipelineStats } from '../src/stats.ts';
import { SyncWorker } from '../src/worker/sync-worker.ts';
import { waitUntil } from './helpers/fixtures.ts';
import { SECRET_KEY, SIGNING_SECRET } from './helpers/pipeline.ts';
import { stateSpace } from './helpers/state.ts';

const closers: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

/** A running SyncWorker on a key prefix of its own (in the run's Redis), and a simulator holding one invitation. */
async function rig(n: number) {
  const sim: Simulator = await startSimulator({ secretKey: SECRET_KEY, signingSecret: SIGNING_SECRET, rateLimit: 0 });
  closers.push(() => sim.close());
  const org = sim.store.createOrganization({ name: `Worker ${n}` });
  const inv = sim.store.createInvitation(org.id, { emailAddress: `worker-${n}@example.com` });

  const url = inject('redisUrl');
  const connections = [connectRedis(url), connectRedis(url), connectRedis(url)];
  closers.push(() => Promise.all(connections.map((c) => c.quit())));
  const [producerConn, consumerConn, workerConn] = connections as [(typeof connections)[0], (typeof connections)[0], (typeof connections)[0]];
  const space = stateSpace(consumerConn, `worker-${n}`);
  const { keys } = space;
  const producer = new SyncQueue({ connection: producerConn, keys, coalesceMs: 0 });
  closers.push(() => producer.close());
  const stats = new PipelineStats();
  const worker = new SyncWorker({
    connection: workerConn,
    keys,
    rateLimit: { max: 1000, windowMs: 1000 },
    backoff: { baseMs: 200, capMs: 400 },
    bapi: new BapiClient({ apiUrl: sim.url, secretKey: SECRET_KEY, timeoutMs: 5000 }),
    publisher: space.publisher,
    state: space.state,
    log: createLogger({ level: 'silent' }),
    stats,
  });
  closers.push(() => worker.close());
  worker.start();

  /** Enqueues `data` and returns a reader of its job's latest stored state. */
  const enqueue = async (data: InvitationJobData) => {
    await producer.enqueue(data);
    const all = await producer.queue.getJobs(['active', 'delayed', 'failed', 'completed', 'waiting']);
    const id = all.find((j) => (j.data as InvitationJobData).invitationId === data.invitationId && j.data.receivedAt === data.receivedAt)!.id!;
    return async () => (await producer.queue.getJob(id))!;
  };
  const completed = (job: Awaited<ReturnType<typeof enqueue>>) => waitUntil(async () => (await (await job()).getState()) === 'completed', 'the job to complete');
  return { sim, org, inv, space, redis: consumerConn, stats, enqueue, completed };
}

it('a publish Redis refuses is retried like any failed attempt, not failed for good nor counted as a BAPI answer', async () => {
  const { inv, org, space, redis, stats, enqueue, completed } = await rig(5);
  // A key of the wrong type: every publish script run fails with Redis' WRONGTYPE error.
  await redis.set(space.keys.snapshot, 'not a hash');
  const job = await enqueue({ organizationId: org.id, invitationId: inv.id, receivedAt: Date.now(), reason: 'organizationInvitation.created' });
  await waitUntil(async () => (await job()).attemptsMade >= 1, 'a first failed attempt');
  const afterFailure = await job();
  expect(await afterFailure.getState()).not.toBe('failed');
  expect(afterFailure.failedReason).toMatch(/WRONGTYPE/);
  // Only real BAPI answers are counted as such: every call answered 200.
  expect([...stats.bapi.keys()]).toStrictEqual(['webhook|200']);
  expect(stats.jobs.failed).toBe(0);

  await redis.del(space.keys.snapshot);
  await completed(job);
  expect((await space.state.get(inv.id))?.updatedAt).toBe(inv.updated_at);
});

it('skips the BAPI call for an event whose version the shared state already holds, and only then', async () => {
  const { sim, inv, org, stats, enqueue, completed } = await rig(10);
  const event = { organizationId: org.id, invitationId: inv.id, eventUpdatedAt: inv.updated_at, reason: 'organizationInvitation.created' };

  // Never held: straight to BAPI.
  await completed(await enqueue({ ...event, receivedAt: Date.now() }));
  expect(sim.stats().getInvitationCalls[inv.id]).toBe(1);

  // Held at the announced version: no BAPI call.
  await completed(await enqueue({ ...event, receivedAt: Date.now() + 1 }));
  expect(stats.jobs.skipped).toBe(1);
  expect(sim.stats().getInvitationCalls[inv.id]).toBe(1);

  // A newer version announced: fetched.
  const changed = sim.store.updateMetadata(inv.id, { publicMetadata: { seat: 2 } });
  await completed(await enqueue({ ...event, eventUpdatedAt: changed.updated_at, receivedAt: Date.now() + 2 }));
  expect(sim.stats().getInvitationCalls[inv.id]).toBe(2);
});

it('checks BAPI against the newest version any webhook announced, not only the one in its own data', async () => {
  const { inv, org, space, redis, stats, enqueue } = await rig(18);
  // An event for a newer state was absorbed by this invitation's waiting job: only Redis
  // knows its version. BAPI (its read lagging) still answers the older state.
  await new AnnouncedVersions(redis, space.keys).raise(inv.id, inv.updated_at + 1000);
  const job = await enqueue({ organizationId: org.id, invitationId: inv.id, eventUpdatedAt: inv.updated_at, receivedAt: Date.now(), reason: 'organizationInvitation.created' });
  await waitUntil(async () => (await job()).attemptsMade >= 1, 'a first attempt');
  expect(stats.staleReads.retried).toBeGreaterThanOrEqual(1);
  expect(await (await job()).getState()).not.toBe('completed');
  expect(await space.state.get(inv.id)).toBeUndefined();
});

const FAR_FUTURE = 9_999_999_999_999;

it('a 404 under the organization an event named, for an invitation the shared state holds under another, tombstones nothing and is counted', async () => {
  const { sim, org, inv, space, stats, enqueue, completed } = await rig(20);
  const other = sim.store.createOrganization({ name: 'Another organization' });
  await completed(await enqueue({ organizationId: org.id, invitationId: inv.id, eventUpdatedAt: inv.updated_at, receivedAt: Date.now(), reason: 'organizationInvitation.created' }));
  // Signed events naming another existing organization (a Clerk bug, a leaked signing
  // secret): BAPI 404s that pair. A newer claim, then a far-future one from a receiver of a
  // release that still let it through (it is announced in Redis too).
  for (const [i, eventUpdatedAt] of [inv.updated_at + 1000, FAR_FUTURE].entries()) {
    await completed(await enqueue({ organizationId: other.id, invitationId: inv.id, eventUpdatedAt, receivedAt: Date.now() + 1 + i, reason: 'organizationInvitation.revoked' }));
  }
  expect(sim.stats().getInvitationCalls[inv.id]).toBe(3);
  expect(await space.state.get(inv.id)).toMatchObject({ deleted: false, updatedAt: inv.updated_at, fields: { organizationId: org.id, status: 'pending' } });
  expect(stats.suspectEvents.otherOrganization).toBe(2);
  expect(stats.writes.tombstoned).toBe(0);

  // The real next event still gets through.
  const accepted = sim.store.acceptInvitation(inv.id);
  await completed(await enqueue({ organizationId: org.id, invitationId: inv.id, eventUpdatedAt: accepted.updated_at, receivedAt: Date.now() + 10, reason: 'organizationInvitation.accepted' }));
  expect(await space.state.get(inv.id)).toMatchObject({ deleted: false, updatedAt: accepted.updated_at, fields: { status: 'accepted' } });
  expect(stats.staleReads).toStrictEqual({ retried: 0, settled: 0 });
});

it('a far-future updated_at, in a job or announced in Redis by an older release, neither holds later events back nor makes late copies fetch', async () => {
  const { sim, org, inv, space, redis, stats, enqueue, completed } = await rig(21);
  const event = { organizationId: org.id, invitationId: inv.id, reason: 'organizationInvitation.created' };
  await completed(await enqueue({ ...event, eventUpdatedAt: inv.updated_at, receivedAt: Date.now() }));
  // Queued (and announced) with updated_at 9999999999999: one fetch, BAPI's answer stands.
  await completed(await enqueue({ ...event, eventUpdatedAt: FAR_FUTURE, receivedAt: Date.now() + 1 }));
  expect(sim.stats().getInvitationCalls[inv.id]).toBe(2);
  expect(await space.state.get(inv.id)).toMatchObject({ deleted: false, updatedAt: inv.updated_at });

  // Late copies of the version held cost no call, the far-future announcement notwithstanding.
  for (let i = 0; i < 3; i++) await completed(await enqueue({ ...event, eventUpdatedAt: inv.updated_at, receivedAt: Date.now() + 2 + i }));
  expect(sim.stats().getInvitationCalls[inv.id]).toBe(2);
  expect(stats.jobs.skipped).toBe(3);

  // A later real event is published at once, not after the stale-read wait.
  const accepted = sim.store.acceptInvitation(inv.id);
  await completed(await enqueue({ ...event, eventUpdatedAt: accepted.updated_at, receivedAt: Date.now() + 10, reason: 'organizationInvitation.accepted' }));
  expect(await space.state.get(inv.id)).toMatchObject({ updatedAt: accepted.updated_at, fields: { status: 'accepted' } });
  expect(stats.staleReads).toStrictEqual({ retried: 0, settled: 0 });

  // A tombstone an older release stamped with such a version does not swallow the real next event.
  const second = sim.store.createInvitation(org.id, { emailAddress: 'worker-second@example.com' });
  await completed(await enqueue({ ...event, invitationId: second.id, eventUpdatedAt: second.updated_at, receivedAt: Date.now() + 20 }));
  const stored = (await redis.hget(space.keys.snapshot, second.id))!;
  await redis.hset(space.keys.snapshot, second.id, stored.replace(/^\d+\|(\d+)\|0\|/, `${FAR_FUTURE}|$1|1|`));
  const revoked = sim.store.revokeInvitation(second.id);
  await completed(await enqueue({ ...event, invitationId: second.id, eventUpdatedAt: revoked.updated_at, receivedAt: Date.now() + 30, reason: 'organizationInvitation.revoked' }));
  expect(await space.state.get(second.id)).toMatchObject({ deleted: false, updatedAt: revoked.updated_at, fields: { status: 'revoked' } });
});
