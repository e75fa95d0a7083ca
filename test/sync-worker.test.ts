import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { BapiClient } from '../src/clerk/client.ts';
import { createLogger } from '../src/logger.ts';
import { GroupCommitWriter } from '../src/mirror/group-commit.ts';
import { migrateMirror } from '../src/mirror/migrate.ts';
import { openMirrorDb, type MirrorConnection } from '../src/mirror/open.ts';
import { MirrorWriter } from '../src/mirror/upsert.ts';
import type { SyncJobData } from '../src/queue/job.ts';
import { SyncQueue } from '../src/queue/sync-queue.ts';
import { connectRedis } from '../src/redis/connection.ts';
import { startSimulator, type Simulator } from '../src/simulator/index.ts';
import { PipelineStats } from '../src/stats.ts';
import { SyncWorker } from '../src/worker/sync-worker.ts';
import { tempDir, waitUntil } from './helpers/fixtures.ts';
import { SECRET_KEY, SIGNING_SECRET, isolatedRedisUrl } from './helpers/pipeline.ts';

const tmp = tempDir();
const closers: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
  tmp.cleanup();
});

/**
 * A running SyncWorker on a Redis database of its own, a fresh mirror file and a simulator
 * holding one invitation; `prepare` runs on the mirror before the worker starts.
 */
async function rig(redisDb: number, prepare: (conn: MirrorConnection) => void = () => {}) {
  const sim: Simulator = await startSimulator({ secretKey: SECRET_KEY, signingSecret: SIGNING_SECRET, rateLimit: 0 });
  closers.push(() => sim.close());
  const org = sim.store.createOrganization({ name: `Worker ${redisDb}` });
  const inv = sim.store.createInvitation(org.id, { emailAddress: `worker-${redisDb}@example.com` });

  const conn = openMirrorDb({ path: join(tmp.path, `mirror-${redisDb}.db`) });
  closers.push(() => conn.sqlite.close());
  migrateMirror(conn);
  prepare(conn);

  const url = await isolatedRedisUrl(redisDb);
  const connections = [connectRedis(url), connectRedis(url), connectRedis(url)];
  closers.push(() => Promise.all(connections.map((c) => c.quit())));
  const [producerConn, consumerConn, workerConn] = connections as [(typeof connections)[0], (typeof connections)[0], (typeof connections)[0]];
  const producer = new SyncQueue({ connection: producerConn, coalesceMs: 0 });
  const consumer = new SyncQueue({ connection: consumerConn });
  closers.push(() => producer.close(), () => consumer.close());
  const stats = new PipelineStats();
  const announcedReads: string[] = [];
  const worker = new SyncWorker({
    connection: workerConn,
    rateLimit: { max: 1000, windowMs: 1000 },
    backoff: { baseMs: 200, capMs: 400 },
    bapi: new BapiClient({ apiUrl: sim.url, secretKey: SECRET_KEY, timeoutMs: 5000 }),
    writer: new GroupCommitWriter(new MirrorWriter(conn)),
    queue: consumer.queue,
    announced: {
      get: (id) => {
        announcedReads.push(id);
        return consumer.announced.get(id);
      },
    },
    log: createLogger({ level: 'silent' }),
    stats,
  });
  closers.push(() => worker.close(true));
  worker.start();

  /** Enqueues `data` and returns a reader of its job's latest stored state. */
  const enqueue = async (data: SyncJobData) => {
    await producer.enqueue(data);
    const all = await producer.queue.getJobs(['active', 'delayed', 'failed', 'completed', 'waiting']);
    const id = all.find((j) => j.data.invitationId === data.invitationId && j.data.receivedAt === data.receivedAt)!.id!;
    return async () => (await producer.queue.getJob(id))!;
  };
  const completed = (job: Awaited<ReturnType<typeof enqueue>>) => waitUntil(async () => (await (await job()).getState()) === 'completed', 'the job to complete');
  return { sim, org, inv, conn, stats, announcedReads, enqueue, completed };
}

it('a mirror write that fails is retried like any failed attempt, not failed for good nor counted as a BAPI answer', async () => {
  // Stands in for a full disk or a lock held past busy_timeout: every insert fails.
  const { inv, org, conn, stats, enqueue, completed } = await rig(5, (c) =>
    c.sqlite.exec("CREATE TRIGGER refuse_writes BEFORE INSERT ON organization_invitations BEGIN SELECT RAISE(ABORT, 'disk is full'); END"),
  );
  const job = await enqueue({ organizationId: org.id, invitationId: inv.id, receivedAt: Date.now(), reason: 'organizationInvitation.created' });
  await waitUntil(async () => (await job()).attemptsMade >= 1, 'a first failed attempt');
  const afterFailure = await job();
  expect(await afterFailure.getState()).not.toBe('failed');
  expect(afterFailure.failedReason).toContain('disk is full');
  // Only real BAPI answers are counted as such: every call answered 200.
  expect([...stats.bapi.keys()]).toStrictEqual(['200']);
  expect(stats.jobs.failed).toBe(0);

  conn.sqlite.exec('DROP TRIGGER refuse_writes');
  await completed(job);
  expect(new MirrorWriter(conn).storedVersion(inv.id)?.updatedAt).toBe(inv.updated_at);
});

it('asks Redis for the announced version only about invitations the mirror already holds', async () => {
  const { sim, inv, org, stats, announcedReads, enqueue, completed } = await rig(10);
  const event = { organizationId: org.id, invitationId: inv.id, eventUpdatedAt: inv.updated_at, reason: 'organizationInvitation.created' };

  // Never held: nothing to compare with, so straight to BAPI.
  await completed(await enqueue({ ...event, receivedAt: Date.now() }));
  expect(announcedReads).toStrictEqual([]);
  expect(sim.stats().getInvitationCalls[inv.id]).toBe(1);

  // Held at the announced version: one Redis read, no BAPI call.
  await completed(await enqueue({ ...event, receivedAt: Date.now() + 1 }));
  expect(announcedReads).toStrictEqual([inv.id]);
  expect(stats.jobs.skipped).toBe(1);
  expect(sim.stats().getInvitationCalls[inv.id]).toBe(1);
});
