import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createMirror } from '../src/mirror/mirror.ts';
import { SYNC_QUEUE } from '../src/queue/names.ts';
import { startSimulator } from '../src/simulator/index.ts';
import { binaryRig, runCli, spawnCli, type CliProcess } from './helpers/child.ts';
import { waitUntil } from './helpers/fixtures.ts';
import { SECRET_KEY, SIGNING_SECRET } from './helpers/pipeline.ts';

const { tmp, sim, redis } = await binaryRig('start');

function start(env: Record<string, string>, args: string[] = []): CliProcess {
  return spawnCli(['start', ...args], { LOG_LEVEL: 'info', PORT: '0', ...env });
}

const credentials = { CLERK_SECRET_KEY: SECRET_KEY, CLERK_WEBHOOK_SIGNING_SECRET: SIGNING_SECRET, MIRROR_API_KEY: 'start-test-api-key-0123456789' };
const startedUrl = async (p: CliProcess) => (await p.waitFor(/"url":"(http:\/\/[^"]+)"[^\n]*clerk-invitation-mirror started/))[1]!;


describe('start: refusing to run', () => {
  it('without Clerk credentials: one line naming the variable and pointing to npm run demo', async () => {
    const r = await runCli(['start'], { MIRROR_DB_PATH: join(tmp.path, 'none.db') });
    expect(r.code).toBe(78);
    const lines = r.output.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^clerk-invitation-mirror start: CLERK_(WEBHOOK_SIGNING_SECRET|SECRET_KEY): .*`npm run demo`/);
    // Every missing variable at once, not one per attempt.
    expect(lines[0]).toMatch(/CLERK_SECRET_KEY: is required/);
    expect(lines[0]).toMatch(/CLERK_WEBHOOK_SIGNING_SECRET: is required/);
  });

  it('with a malformed secret key: one line saying what is expected', async () => {
    const r = await runCli(['start', '--role', 'worker'], { CLERK_SECRET_KEY: 'pk_test_oops' });
    expect(r.code).toBe(78);
    expect(r.output.trim().split('\n')).toEqual([expect.stringMatching(/CLERK_SECRET_KEY: .*sk_(live|test)_/)]);
  });

  it('a read API without any credential (fail closed)', async () => {
    const r = await runCli(['start', '--role', 'api'], { MIRROR_DB_PATH: join(tmp.path, 'api.db') });
    expect(r.code).toBe(78);
    expect(r.output.trim().split('\n')).toEqual([expect.stringMatching(/MIRROR_API_KEY: .*MIRROR_API_KEY or CLERK_SECRET_KEY/)]);
  });

  it('an unknown role', async () => {
    const r = await runCli(['start', '--role', 'receiver,janitor'], credentials);
    expect(r.code).toBe(2);
    expect(r.output).toMatch(/unknown role "janitor"/);
  });

  it('no REDIS_URL and no redis-server installed: one line saying how to get Redis', async () => {
    // An empty PATH: spawning redis-server fails as on a machine without it (node is spawned by its full path).
    const emptyBin = join(tmp.path, 'empty-bin');
    mkdirSync(emptyBin, { recursive: true });
    const r = await runCli(['start', '--role', 'receiver'], { ...credentials, PATH: emptyBin, MIRROR_DB_PATH: join(tmp.path, 'noredis/m.db') });
    expect(r.code).toBe(1);
    const lines = r.output.trim().split('\n').filter((l) => !l.startsWith('{'));
    expect(lines).toEqual([expect.stringMatching(/redis-server is not installed: .*apt-get install -y redis-server.*brew install redis.*docker compose up -d redis.*REDIS_URL/)]);
  });
});

describe('start: running and stopping', () => {
  it('syncs webhooks, then exits 0 on SIGTERM after closing everything', async () => {
    const db = join(tmp.path, 'run/mirror.db');
    const p = start({ ...credentials, CLERK_API_URL: sim.url, ...redis.env, MIRROR_DB_PATH: db });
    const url = await startedUrl(p);
    // Ready once the replica has loaded a shared state that the start-up backfill filled.
    await waitUntil(async () => (await fetch(`${url}/readyz`)).status === 200, 'readiness');
    sim.delivery.addEndpoint(`${url}/webhooks/clerk`);
    const org = sim.store.createOrganization({ name: 'Start' });
    const inv = sim.store.createInvitation(org.id, { emailAddress: 'started@example.com' });
    const mirror = createMirror({ path: db, readonly: true });
    try {
      await waitUntil(() => mirror.getOrganizationInvitation({ organizationId: org.id, invitationId: inv.id }).then(() => true, () => false), 'the row');
    } finally {
      mirror.close();
      sim.delivery.removeEndpoint(`${url}/webhooks/clerk`);
    }
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(p.output()).toMatch(/"msg":"shutting down"/);
    expect(p.output()).toMatch(/"msg":"stopped"/);
    expect(p.output()).not.toContain('started@example.com');
    // The test Redis runs without AOF: the receiver says what a crash of it would cost.
    expect(p.output()).toMatch(/"problem":"AOF is off[^"]*","msg":"Redis may lose acknowledged webhooks/);
  });

  it('a second signal exits at once while active jobs are still running', async () => {
    const hanging = await startSimulator({ secretKey: SECRET_KEY, signingSecret: SIGNING_SECRET, rateLimit: 0, faults: { hangRate: 1 } });
    const queue = new Queue(SYNC_QUEUE, { connection: new Redis(redis.url, { maxRetriesPerRequest: null }), prefix: redis.keys.queuePrefix });
    try {
      const p = start({ ...credentials, CLERK_API_URL: hanging.url, ...redis.env, MIRROR_DB_PATH: join(tmp.path, 'hang/mirror.db'), BAPI_TIMEOUT_MS: '60000' });
      const url = await startedUrl(p);
      hanging.delivery.addEndpoint(`${url}/webhooks/clerk`);
      hanging.store.createInvitation(hanging.store.createOrganization({ name: 'Hang' }).id, { emailAddress: 'hang@example.com' });
      await waitUntil(async () => (await queue.getActiveCount()) > 0, 'an active job');
      p.child.kill('SIGTERM');
      await p.waitFor(/"msg":"shutting down"/);
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(1);
      expect(p.output()).toMatch(/second signal: exiting now/);
    } finally {
      await queue.obliterate({ force: true });
      await queue.close();
      await hanging.close();
    }
  });

  it('with REDIS_URL unset, runs a private redis-server next to the database and stops it on exit', async () => {
    const db = join(tmp.path, 'managed/mirror.db');
    const p = start({ ...credentials, CLERK_API_URL: sim.url, MIRROR_DB_PATH: db });
    const url = await startedUrl(p);
    const urlFile = join(tmp.path, 'managed/redis/redis.url');
    const managedUrl = readFileSync(urlFile, 'utf8').trim();
    const r = new Redis(managedUrl, { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
    await r.connect();
    expect(await r.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    // A 2xx to Svix is on disk before it is sent.
    expect(await r.config('GET', 'appendfsync')).toEqual(['appendfsync', 'always']);
    expect(await r.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
    expect((await r.config('GET', 'dir'))[1]).toBe(join(tmp.path, 'managed/redis'));
    r.disconnect();
    await waitUntil(async () => (await fetch(`${url}/readyz`)).status === 200, 'readiness');

    // `failed` finds the running service's private Redis without REDIS_URL.
    const failed = await runCli(['failed', 'list'], { MIRROR_DB_PATH: db });
    expect(failed).toMatchObject({ code: 0 });
    expect(failed.output).toMatch(/^0 failed job\(s\)/m);

    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(p.output()).not.toMatch(/Redis may lose acknowledged webhooks/);
    expect(existsSync(urlFile)).toBe(false);
    const after = new Redis(managedUrl, { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
    after.on('error', () => {});
    await expect(after.connect()).rejects.toThrow();
    after.disconnect();
    // The AOF stays for the next start.
    expect(existsSync(join(tmp.path, 'managed/redis/appendonlydir'))).toBe(true);
  });
});
