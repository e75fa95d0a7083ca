import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { BapiClient } from '../src/clerk/client.ts';
import { createLogger } from '../src/logger.ts';
import { GroupCommitWriter } from '../src/mirror/group-commit.ts';
import { migrateMirror } from '../src/mirror/migrate.ts';
import { openMirrorDb } from '../src/mirror/open.ts';
import { MirrorWriter } from '../src/mirror/upsert.ts';
import { SyncQueue } from '../src/queue/sync-queue.ts';
import { connectRedis } from '../src/redis/connection.ts';
import { startSimulator } from '../src/simulator/index.ts';
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

it('a mirror write that fails is retried like any failed attempt, not failed for good nor counted as a BAPI answer', async () => {
  const sim = await startSimulator({ secretKey: SECRET_KEY, signingSecret: SIGNING_SECRET, rateLimit: 0 });
  closers.push(() => sim.close());
  const org = sim.store.createOrganization({ name: 'Write failure' });
  const inv = sim.store.createInvitation(org.id, { emailAddress: 'write-failure@example.com' });

  const conn = openMirrorDb({ path: join(tmp.path, 'mirror.db') });
  closers.push(() => conn.sqlite.close());
  migrateMirror(conn);
  // Stands in for a full disk or a lock held past busy_timeout: every insert fails.
  conn.sqlite.exec("CREATE TRIGGER refuse_writes BEFORE INSERT ON organization_invitations BEGIN SELECT RAISE(ABORT, 'disk is full'); END");

  const url = await isolatedRedisUrl(5);
  const connections = [connectRedis(url), connectRedis(url), connectRedis(url)];
  closers.push(() => Promise.all(connections.map((c) => c.quit())));
  const [producerConn, consumerConn, workerConn] = connections as [typeof connections[0], typeof connections[0], typeof connections[0]];
  const producer = new SyncQueue({ connection: producerConn, coalesceMs: 0 });
  const consumer = new SyncQueue({ connection: consumerConn });
  closers.push(() => producer.close(), () => consumer.close());
  const stats = new PipelineStats();
  const worker = new SyncWorker({
    connection: workerConn,
    rateLimit: { max: 1000, windowMs: 1000 },
    backoff: { baseMs: 200, capMs: 400 },
    bapi: new BapiClient({ apiUrl: sim.url, secretKey: SECRET_KEY, timeoutMs: 5000 }),
    writer: new GroupCommitWriter(new MirrorWriter(conn)),
    queue: consumer.queue,
    announced: consumer.announced,
    log: createLogger({ level: 'silent' }),
    stats,
  });
  closers.push(() => worker.close(true));
  worker.start();

  const data = { organizationId: org.id, invitationId: inv.id, receivedAt: Date.now(), reason: 'organizationInvitation.created' };
  await producer.enqueue(data);
  const job = async () => (await producer.queue.getJobs(['active', 'delayed', 'failed', 'completed', 'waiting'])).find((j) => j.data.invitationId === inv.id);
  await waitUntil(async () => ((await job())?.attemptsMade ?? 0) >= 1, 'a first failed attempt');
  const afterFailure = await job();
  expect(await afterFailure!.getState()).not.toBe('failed');
  expect(afterFailure!.failedReason).toContain('disk is full');
  // Only real BAPI answers are counted as such: every call answered 200.
  expect([...stats.bapi.keys()]).toStrictEqual(['200']);
  expect(stats.jobs.failed).toBe(0);

  conn.sqlite.exec('DROP TRIGGER refuse_writes');
  await waitUntil(async () => (await (await job())?.getState()) === 'completed', 'the retried job to complete');
  expect(new MirrorWriter(conn).storedVersion(inv.id)?.updatedAt).toBe(sim.store.getInvitation(inv.id)!.updated_at);
});
