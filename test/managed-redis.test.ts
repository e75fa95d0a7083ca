import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { binaryRig, spawnCli, type CliProcess } from './helpers/child.ts';
import { waitUntil } from './helpers/fixtures.ts';
import { SECRET_KEY, SIGNING_SECRET } from './helpers/pipeline.ts';
import { redisAnswers, startRedisServer } from './helpers/redis-server.ts';

const { tmp, sim } = await binaryRig('managed-redis');

const env = (db: string) => ({
  CLERK_SECRET_KEY: SECRET_KEY,
  CLERK_WEBHOOK_SIGNING_SECRET: SIGNING_SECRET,
  MIRROR_API_KEY: 'managed-redis-test-key-0123456789',
  CLERK_API_URL: sim.url,
  MIRROR_DB_PATH: db,
  LOG_LEVEL: 'info',
  PORT: '0',
});
const start = (db: string): CliProcess => spawnCli(['start'], env(db));
const startedUrl = async (p: CliProcess) => (await p.waitFor(/"url":"(http:\/\/[^"]+)"[^\n]*clerk-invitation-mirror started/, 30_000))[1]!;

describe('the private redis-server', () => {
  it('a second start on the same data directory refuses with one line and leaves the first one working', async () => {
    const db = join(tmp.path, 'twice/mirror.db');
    const first = start(db);
    const url = await startedUrl(first);
    const second = start(db);
    expect(await second.exited).toBe(1);
    expect(second.output()).toMatch(/^clerk-invitation-mirror start: another process \(pid \d+\) runs the private redis-server in .*twice\/redis: stop it first/m);
    // The first one's Redis was neither adopted nor stopped by the second.
    await waitUntil(async () => (await fetch(`${url}/readyz`)).status === 200, 'the first one ready');
    const redisUrl = readFileSync(join(tmp.path, 'twice/redis/redis.url'), 'utf8').trim();
    expect(await redisAnswers(redisUrl)).toBe(true);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(await redisAnswers(redisUrl)).toBe(false);
    expect(existsSync(join(tmp.path, 'twice/redis/redis.lock'))).toBe(false);
  });

  it('a stale redis.url naming an unrelated Redis is neither adopted, written into, nor shut down', async () => {
    // A redis-server of this test's own, so that every key on it can be counted.
    const server = await startRedisServer({ dir: join(tmp.path, 'unrelated') });
    const unrelated = server.url;
    const probe = new Redis(unrelated);
    await probe.set('unrelated-marker', '1');
    const dir = join(tmp.path, 'stale/redis');
    mkdirSync(dir, { recursive: true });
    // As a crashed run on another day could leave it, the port since taken by another Redis.
    writeFileSync(join(dir, 'redis.url'), `${unrelated}\n`);
    writeFileSync(join(dir, 'redis.owner.json'), JSON.stringify({ url: unrelated, runId: 'f'.repeat(40) }));
    const p = start(join(tmp.path, 'stale/mirror.db'));
    await startedUrl(p);
    const own = readFileSync(join(dir, 'redis.url'), 'utf8').trim();
    expect(own).not.toBe(unrelated);
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(await probe.ping()).toBe('PONG');
    // No job, state or schedule of ours landed there.
    expect(await probe.keys('*')).toEqual(['unrelated-marker']);
    await probe.quit();
    await server.stop();
  });

  it('after a crash the next start adopts the server it left (proven by run id and directory) and stops it at the end', async () => {
    const db = join(tmp.path, 'crash/mirror.db');
    const first = start(db);
    await startedUrl(first);
    const redisUrl = readFileSync(join(tmp.path, 'crash/redis/redis.url'), 'utf8').trim();
    first.child.kill('SIGKILL');
    await first.exited;
    // Its own process group: the orphan outlives the SIGKILLed service.
    expect(await redisAnswers(redisUrl)).toBe(true);
    const second = start(db);
    await startedUrl(second);
    expect(readFileSync(join(tmp.path, 'crash/redis/redis.url'), 'utf8').trim()).toBe(redisUrl);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(await redisAnswers(redisUrl)).toBe(false);
  });
});
