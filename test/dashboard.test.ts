import { Queue, Worker } from 'bullmq';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardRoutes } from '../src/http/dashboard.ts';
import { isolatedKeys, testRedis } from './helpers/state.ts';
import { waitUntil } from './helpers/fixtures.ts';

const READ_KEY = 'dashboard-read-key-0123456789abcdef';
const ADMIN_KEY = 'dashboard-admin-key-0123456789abcdef';
const redis = testRedis();
const keys = isolatedKeys('dashboard');
const queue = new Queue('invitation-sync', { connection: redis, prefix: keys.queuePrefix });
const apps: FastifyInstance[] = [];

beforeAll(async () => {
  // One failed job to retry.
  await queue.add('x', { n: 1 }, { attempts: 1 });
  const worker = new Worker(
    'invitation-sync',
    async () => {
      throw new Error('boom');
    },
    { connection: redis.duplicate({ maxRetriesPerRequest: null }), prefix: keys.queuePrefix },
  );
  await waitUntil(async () => (await queue.getFailedCount()) === 1, 'a failed job');
  await worker.close();
});
afterAll(async () => {
  for (const app of apps) await app.close();
  await queue.obliterate({ force: true });
  await queue.close();
  await redis.quit();
});

async function board(adminKeys?: string[]) {
  const app = Fastify();
  apps.push(app);
  await app.register(dashboardRoutes, { queues: [queue], keys: [READ_KEY], adminKeys });
  await app.ready();
  const call = (method: 'GET' | 'PUT', url: string, key: string) => app.inject({ method, url, headers: { authorization: `Bearer ${key}` } });
  return call;
}

const RETRY = '/admin/queues/api/queues/invitation-sync/retry/failed';

describe('the dashboard', () => {
  it('without MIRROR_ADMIN_KEY: readers see it, nobody changes anything, and the board says it is read-only', async () => {
    const call = await board();
    const queues = await call('GET', '/admin/queues/api/queues', READ_KEY);
    expect(queues.statusCode).toBe(200);
    expect((queues.json() as { queues: { readOnlyMode: boolean }[] }).queues[0]!.readOnlyMode).toBe(true);
    const retry = await call('PUT', RETRY, READ_KEY);
    expect(retry.statusCode).toBe(403);
    expect(retry.json()).toMatchObject({ error: 'forbidden', message: expect.stringMatching(/MIRROR_ADMIN_KEY/) });
    expect(await queue.getFailedCount()).toBe(1);
  });

  it('with MIRROR_ADMIN_KEY: a read key still cannot act, the admin key can', async () => {
    const call = await board([ADMIN_KEY]);
    expect((await call('GET', '/admin/queues/api/queues', READ_KEY)).statusCode).toBe(200);
    expect((await call('PUT', RETRY, READ_KEY)).statusCode).toBe(403);
    expect(await queue.getFailedCount()).toBe(1);
    expect((await call('PUT', RETRY, 'not-a-key-at-all-0123456789')).statusCode).toBe(401);
    const retry = await call('PUT', RETRY, ADMIN_KEY);
    expect(retry.statusCode).toBe(200);
    expect(await queue.getFailedCount()).toBe(0);
  });
});
