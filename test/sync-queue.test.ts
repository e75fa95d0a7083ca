import { afterAll, describe, expect, it } from 'vitest';
import type { InvitationJobData } from '../src/queue/job.ts';
import { RecentKeys } from '../src/queue/recent-keys.ts';
import { SyncQueue } from '../src/queue/sync-queue.ts';
import { isolatedKeys, testRedis } from './helpers/state.ts';

const redis = testRedis();
const queues: SyncQueue[] = [];
afterAll(async () => {
  for (const q of queues) await q.close();
  await redis.quit();
});

function queue(name: string, coalesceMs: number) {
  const q = new SyncQueue({ connection: redis, keys: isolatedKeys(name), coalesceMs });
  queues.push(q);
  return q;
}

const event = (invitationId: string, receivedAt = Date.now()): InvitationJobData => ({
  organizationId: 'org_2leading000000000000000000',
  invitationId,
  eventUpdatedAt: receivedAt,
  receivedAt,
  reason: 'organizationInvitation.created',
});

async function statesOf(q: SyncQueue) {
  const jobs = await q.queue.getJobs(['waiting', 'delayed', 'active']);
  return Promise.all(jobs.map(async (j) => ({ invitation: (j.data as InvitationJobData).invitationId, state: await j.getState(), delay: j.opts.delay ?? 0 })));
}

describe('the sync queue', () => {
  it('queues the first event of a quiet invitation for at once; later ones of a burst wait out the window, in one job', async () => {
    // A window far longer than the test: an event that waited for it would still be delayed.
    const q = queue('leading', 60_000);
    await q.enqueue(event('orginv_2lead1'));
    expect(await statesOf(q)).toEqual([{ invitation: 'orginv_2lead1', state: 'waiting', delay: 0 }]);
    // Another invitation is quiet too: at once as well.
    await q.enqueue(event('orginv_2lead2'));
    expect((await statesOf(q)).filter((j) => j.state === 'waiting')).toHaveLength(2);

    // The first job is taken by nothing here: it stays waiting, and a second event joins it.
    await q.enqueue(event('orginv_2lead1', Date.now() + 1));
    expect((await statesOf(q)).filter((j) => j.invitation === 'orginv_2lead1')).toEqual([{ invitation: 'orginv_2lead1', state: 'waiting', delay: 0 }]);
  });

  it('a burst after a fetch coalesces into one delayed job', async () => {
    const q = queue('trailing', 60_000);
    await q.enqueue(event('orginv_2trail'));
    // As a worker would: the leading job fetched and is gone.
    await q.queue.obliterate({ force: true });
    for (let i = 1; i <= 5; i++) await q.enqueue(event('orginv_2trail', Date.now() + i));
    expect(await statesOf(q)).toEqual([{ invitation: 'orginv_2trail', state: 'delayed', delay: 60_000 }]);
  });
});

describe('the oldest waiting job', () => {
  it('is the first queued of those ready to run, and none once the queue is empty', async () => {
    const q = queue('oldest', 60_000);
    expect(await q.oldestWaitingAt()).toBeUndefined();
    await q.enqueue(event('orginv_2old1'));
    const [first] = await q.queue.getJobs(['waiting']);
    await new Promise((r) => setTimeout(r, 5));
    await q.enqueue(event('orginv_2old2'));
    await q.enqueue(event('orginv_2old3'));
    expect(await q.oldestWaitingAt()).toBe(first!.timestamp);
    await q.queue.obliterate({ force: true });
    expect(await q.oldestWaitingAt()).toBeUndefined();
  });
});

describe('RecentKeys', () => {
  it('tells a key seen within the window, and forgets the old ones as it goes', () => {
    let t = 0;
    const recent = new RecentKeys(100, () => t);
    expect(recent.touch('a')).toBe(false);
    t = 50;
    expect(recent.touch('a')).toBe(true);
    expect(recent.touch('b')).toBe(false);
    t = 149;
    expect(recent.touch('a')).toBe(true);
    t = 200;
    // 'b' was last seen at 50: forgotten, and so no longer held.
    expect(recent.touch('c')).toBe(false);
    expect(recent.size).toBe(2);
    t = 260;
    expect(recent.touch('a')).toBe(false);
  });
});
