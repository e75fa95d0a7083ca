import { killRedisServers, ownRedis } from './helpers/redis-server.ts';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { startService } from '../src/service.ts';
import { fixture, tempDir } from './helpers/fixtures.ts';
import { SECRET_KEY, SIGNING_SECRET, signed, startHarness, type Harness } from './helpers/pipeline.ts';

const tmp = tempDir();
let h: Harness;
beforeAll(async () => {
  // Receiver only: whatever reaches the queue stays there for the test to see.
  h = await startHarness({ name: 'receiver', dir: tmp.path, roles: ['receiver'] });
});
afterAll(async () => {
  await h?.stop();
  tmp.cleanup();
});

const accepted = fixture<Record<string, unknown>>('webhook-organizationInvitation.accepted.json');
const queued = async () => {
  const c = await h.queue.getJobCounts('waiting', 'delayed', 'active', 'prioritized');
  return Object.values(c).reduce((a, b) => a + b, 0);
};
const post = (body: string | Buffer, headers: Record<string, string>) =>
  h.service.app.inject({ method: 'POST', url: '/webhooks/clerk', headers, payload: body });

describe('POST /webhooks/clerk refuses', () => {
  const good = () => signed(accepted);
  const cases: [string, () => { body: string | Buffer; headers: Record<string, string> }, number][] = [
    ['no signature headers', () => ({ body: good().body, headers: { 'content-type': 'application/json' } }), 400],
    ['a missing svix-id', () => { const s = good(); delete s.headers['svix-id']; return s; }, 400],
    ['a missing svix-timestamp', () => { const s = good(); delete s.headers['svix-timestamp']; return s; }, 400],
    ['a signature from another secret', () => signed(accepted, { secret: `whsec_${Buffer.alloc(32, 99).toString('base64')}` }), 400],
    ['a body changed after signing', () => { const s = good(); return { ...s, body: s.body.replace('accepted', 'revoked') }; }, 400],
    ['a timestamp 6 minutes old', () => signed(accepted, { at: new Date(Date.now() - 6 * 60_000) }), 400],
    ['a timestamp 6 minutes ahead', () => signed(accepted, { at: new Date(Date.now() + 6 * 60_000) }), 400],
    ['a signed body that is not JSON', () => signed('{"type": "organizationInvitation.accepted", '), 400],
    ['a signed JSON array', () => signed([1, 2]), 400],
    ['a signed invitation event without ids', () => signed({ type: 'organizationInvitation.created', data: { status: 'pending' } }), 400],
    ['a signed invitation event with a path in its id', () => signed({ type: 'organizationInvitation.created', data: { id: 'orginv_x/../../y', organization_id: 'org_1' } }), 400],
    ['a non-JSON content type', () => ({ ...good(), headers: { ...good().headers, 'content-type': 'text/plain' } }), 415],
    ['a form content type', () => ({ ...good(), headers: { ...good().headers, 'content-type': 'application/x-www-form-urlencoded' } }), 415],
    ['a body over 256 KiB', () => signed({ type: 'user.created', data: { pad: 'x'.repeat(300 * 1024) } }), 413],
  ];

  it.each(cases)('%s, and enqueues nothing', async (_name, make, status) => {
    const { body, headers } = make();
    const res = await post(body, headers);
    expect(res.statusCode).toBe(status);
    expect(res.json()).toHaveProperty('error');
    expect(await queued()).toBe(0);
  });
});

describe('POST /webhooks/clerk accepts', () => {
  it('a signed invitation event, once the job is in Redis', async () => {
    const s = signed(accepted);
    const res = await post(s.body, { ...s.headers, 'content-type': 'application/json; charset=utf-8' });
    expect(res.statusCode).toBe(200);
    const jobs = await h.queue.getJobs(['delayed', 'waiting']);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.data).toMatchObject({
      organizationId: 'org_2xQ6yN8cTtHh4Jk2mPq7rSd1Ef0',
      invitationId: 'orginv_2xQ7dM3bVvQpZr1s9kLw0aYt8Hc',
      eventUpdatedAt: 1764883200000,
      reason: 'organizationInvitation.accepted',
    });
    // The same invitation again: still one job.
    const again = signed(accepted);
    expect((await post(again.body, again.headers)).statusCode).toBe(200);
    expect(await queued()).toBe(1);
    await h.queue.obliterate({ force: true });
  });

  it('a signed invitation event whose updated_at lies more than 5 min past our clock, queued without that version and counted', async () => {
    const data = accepted.data as Record<string, unknown>;
    const redis = new Redis(h.service.redisUrl!);
    try {
      const futures = [9_999_999_999_999, Date.now() + 24 * 3600_000];
      for (const [i, updatedAt] of futures.entries()) {
        const s = signed({ ...accepted, data: { ...data, id: `orginv_2future${i}`, updated_at: updatedAt } });
        expect((await post(s.body, s.headers)).statusCode).toBe(200);
      }
      // Within the clock skew: a version like any other.
      const skewed = Date.now() + 60_000;
      const s = signed({ ...accepted, data: { ...data, id: 'orginv_2skewed', updated_at: skewed } });
      expect((await post(s.body, s.headers)).statusCode).toBe(200);

      const jobs = new Map((await h.queue.getJobs(['delayed', 'waiting'])).map((j) => [j.data.invitationId as string, j.data as Record<string, unknown>]));
      for (const i of futures.keys()) {
        expect(jobs.get(`orginv_2future${i}`)).toMatchObject({ organizationId: data.organization_id, reason: 'organizationInvitation.accepted' });
        expect(jobs.get(`orginv_2future${i}`)).not.toHaveProperty('eventUpdatedAt');
        // Nothing announced: later events of it are neither held back nor made to fetch.
        expect(await redis.get(h.keys.announced(`orginv_2future${i}`))).toBeNull();
      }
      expect(jobs.get('orginv_2skewed')).toMatchObject({ eventUpdatedAt: skewed });
      expect(await redis.get(h.keys.announced('orginv_2skewed'))).toBe(String(skewed));
      expect(h.service.stats.suspectEvents.futureUpdatedAt).toBe(2);
      expect(h.logs()).toMatch(/updated_at lies more than 5 min past our clock/);
    } finally {
      await redis.quit();
      await h.queue.obliterate({ force: true });
    }
  });

  it.each(['user.created', 'session.created', 'organizationDomain.created', 'organizationMembership.created', 'constructor', '__proto__'])(
    'a %s event with 200, without enqueuing',
    async (type) => {
      const s = signed({ type, object: 'event', data: { id: 'user_123' } });
      const res = await post(s.body, s.headers);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ ok: true, ignored: true });
      expect(await queued()).toBe(0);
    },
  );
});

describe('when Redis is unavailable', () => {
  it('answers 503 so that Svix retries, and /readyz names Redis', async () => {
    const log = createLogger({ level: 'silent' });
    const { url, server } = await ownRedis(tmp.path);
    const config = loadConfig({
      CLERK_SECRET_KEY: SECRET_KEY,
      CLERK_WEBHOOK_SIGNING_SECRET: SIGNING_SECRET,
      REDIS_URL: url,
      MIRROR_DB_PATH: `${tmp.path}/down.db`,
      PORT: '0',
    });
    const service = await startService({ config, log, roles: ['receiver'] });
    try {
      server.kill('SIGKILL');
      await new Promise((r) => server.once('exit', r));
      const s = signed(accepted);
      const res = await service.app.inject({ method: 'POST', url: '/webhooks/clerk', headers: s.headers, payload: s.body });
      expect(res.statusCode).toBe(503);
      const ready = await service.app.inject({ method: 'GET', url: '/readyz' });
      expect(ready.statusCode).toBe(503);
      expect(ready.json().failing).toHaveProperty('redis');
      expect((await service.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    } finally {
      await service.stop();
      killRedisServers();
    }
  });

  it('does not start when Redis never answers: it says so after REDIS_CONNECT_TIMEOUT_MS', async () => {
    const config = loadConfig({
      CLERK_WEBHOOK_SIGNING_SECRET: SIGNING_SECRET,
      REDIS_URL: 'redis://127.0.0.1:1',
      REDIS_CONNECT_TIMEOUT_MS: '300',
      MIRROR_DB_PATH: `${tmp.path}/never.db`,
      PORT: '0',
    });
    await expect(startService({ config, log: createLogger({ level: 'silent' }), roles: ['receiver'] })).rejects.toThrow(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1 within 300 ms/);
  });
});
