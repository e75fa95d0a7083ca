import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { MAINTENANCE_QUEUE } from '../src/maintenance/jobs.ts';
import { freePort } from '../src/redis/managed.ts';
import { killRedisServers, ownRedis } from './helpers/redis-server.ts';
import { startSimulator } from '../src/simulator/index.ts';
import { binaryRig, spawnCli, type CliProcess } from './helpers/child.ts';
import { waitUntil } from './helpers/fixtures.ts';
import { SECRET_KEY, SIGNING_SECRET } from './helpers/pipeline.ts';

// SIGTERM must end the process within SHUTDOWN_TIMEOUT_MS whatever hangs: these give it
// every reason to hang and wait for the exit a little longer than the deadline.
const DEADLINE_MS = 4000;
const SLACK_MS = 3000;

const { tmp, sim, redis } = await binaryRig('shutdown');
afterAll(killRedisServers);

const credentials = { CLERK_SECRET_KEY: SECRET_KEY, CLERK_WEBHOOK_SIGNING_SECRET: SIGNING_SECRET, MIRROR_API_KEY: 'shutdown-test-api-key-0123456789' };

let started = 0;
/** Each run on keys of its own (a hung backfill's lock outlives its test), unless `env` names them. */
function start(env: Record<string, string>, args: string[] = [], wrapper?: string[]): CliProcess {
  const prefix = redis.sub(`run-${++started}`);
  return spawnCli(['start', ...args], { LOG_LEVEL: 'info', PORT: '0', SHUTDOWN_TIMEOUT_MS: String(DEADLINE_MS), REDIS_KEY_PREFIX: prefix, ...env }, undefined, { wrapper });
}

const startedUrl = async (p: CliProcess) => (await p.waitFor(/"url":"(http:\/\/[^"]+)"[^\n]*clerk-invitation-mirror started/, 30_000))[1]!;

/** The exit code, or a failure naming how long past the deadline the process was still alive. */
async function exitWithinDeadline(p: CliProcess): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), DEADLINE_MS + SLACK_MS)));
  const outcome = await Promise.race([p.exited, late]);
  clearTimeout(timer);
  if (outcome === 'late') throw new Error(`still running ${DEADLINE_MS + SLACK_MS} ms after SIGTERM; output:\n${p.output().slice(-3000)}`);
  return outcome;
}

describe('shutdown within its deadline', () => {
  it('with Redis gone while running', async () => {
    const { url: ownUrl, server } = await ownRedis(tmp.path);
    const p = start({ ...credentials, CLERK_API_URL: sim.url, REDIS_URL: ownUrl, MIRROR_DB_PATH: join(tmp.path, 'gone/mirror.db') });
    const url = await startedUrl(p);
    await waitUntil(async () => (await fetch(`${url}/readyz`)).status === 200, 'readiness');
    server.kill('SIGKILL');
    await waitUntil(async () => (await fetch(`${url}/readyz`)).status === 503, 'readiness noticing Redis is gone');
    p.child.kill('SIGTERM');
    const code = await exitWithinDeadline(p);
    // Nothing was abandoned: every close ended by itself, Redis or not.
    expect(p.output()).not.toMatch(/abandoned/);
    expect(code).toBe(0);
    expect(p.output()).toMatch(/"msg":"stopped"/);
  });

  it('with a backfill in flight on a Clerk that never answers', async () => {
    const hanging = await startSimulator({ secretKey: SECRET_KEY, signingSecret: SIGNING_SECRET, rateLimit: 0, faults: { hangRate: 1 } });
    const maintenance = new Queue(MAINTENANCE_QUEUE, { connection: new Redis(redis.url, { maxRetriesPerRequest: null }), prefix: redis.keys.queuePrefix });
    try {
      const p = start({ ...credentials, CLERK_API_URL: hanging.url, ...redis.env, MIRROR_DB_PATH: join(tmp.path, 'hang/mirror.db'), BAPI_TIMEOUT_MS: '60000' });
      await startedUrl(p);
      // The shared state is empty: start-up queued a backfill, and its first list call hangs.
      await waitUntil(async () => (await maintenance.getActiveCount()) > 0, 'an active backfill');
      p.child.kill('SIGTERM');
      expect(typeof (await exitWithinDeadline(p))).toBe('number');
      expect(p.output()).toMatch(/"msg":"shutting down"/);
    } finally {
      await maintenance.obliterate({ force: true });
      await maintenance.close();
      await hanging.close();
    }
  });

  it('while start-up waits for a Redis that does not answer', async () => {
    const closed = `redis://127.0.0.1:${await freePort()}`;
    const p = start({ ...credentials, CLERK_API_URL: sim.url, REDIS_URL: closed, MIRROR_DB_PATH: join(tmp.path, 'waiting/mirror.db'), REDIS_CONNECT_TIMEOUT_MS: '60000' });
    await p.waitFor(/Redis does not answer yet/);
    p.child.kill('SIGTERM');
    expect(await exitWithinDeadline(p)).toBe(0);
    expect(p.output()).toMatch(/stopped before start-up finished/);
  });
});

describe('as PID 1 (a container without init)', () => {
  /** The node process unshare started: PID 1 of the new namespace. */
  async function pid1Of(p: CliProcess): Promise<number> {
    let pid: number | undefined;
    await waitUntil(() => {
      const children = readFileSync(`/proc/${p.child.pid}/task/${p.child.pid}/children`, 'utf8').trim();
      pid = children ? Number(children.split(' ')[0]) : undefined;
      return pid !== undefined;
    }, 'the namespaced node process', 5000);
    return pid!;
  }
  const unshare = ['unshare', '--pid', '--fork', '--kill-child'];
  const haveUnshare = spawnSync('unshare', ['--pid', '--fork', 'true']).status === 0;

  it('the namespace tooling works here (CI runs as root)', () => {
    expect(haveUnshare).toBe(true);
  });

  it('SIGTERM during start-up ends the process, long before start-up would have finished', async () => {
    const p = start({ ...credentials, CLERK_API_URL: sim.url, REDIS_URL: redis.url, MIRROR_DB_PATH: join(tmp.path, 'pid1-early/mirror.db') }, [], unshare);
    const pid = await pid1Of(p);
    // Between exec and the binary's first line nothing can catch a signal (Node's own
    // handler re-raises it, which PID 1 ignores; init: true covers that window in compose),
    // so it is sent again until it lands. Handlers that came only after start-up would let
    // the start finish first.
    const again = setInterval(() => {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone
      }
    }, 100);
    try {
      const code = await exitWithinDeadline(p);
      // 143 from the binary's early listener, 0 or 1 (a second signal) once start had taken over.
      expect([0, 1, 143]).toContain(code);
    } finally {
      clearInterval(again);
    }
    expect(p.output()).not.toMatch(/clerk-invitation-mirror started/);
  });

  it('SIGTERM once running stops it cleanly, as for any other process', async () => {
    const p = start({ ...credentials, CLERK_API_URL: sim.url, REDIS_URL: redis.url, MIRROR_DB_PATH: join(tmp.path, 'pid1/mirror.db') }, [], unshare);
    await startedUrl(p);
    process.kill(await pid1Of(p), 'SIGTERM');
    expect(await exitWithinDeadline(p)).toBe(0);
    expect(p.output()).toMatch(/"msg":"stopped"/);
  });
});

describe('start-up without Redis', () => {
  it('a receiver or worker gives up after REDIS_CONNECT_TIMEOUT_MS with one line naming the server (not its password)', async () => {
    const closed = `redis://:hunter2secret@127.0.0.1:${await freePort()}`;
    const p = start({ ...credentials, CLERK_API_URL: sim.url, REDIS_URL: closed, MIRROR_DB_PATH: join(tmp.path, 'never/mirror.db'), REDIS_CONNECT_TIMEOUT_MS: '1500' });
    expect(await p.exited).toBe(1);
    const lines = p.output().trim().split('\n').filter((l) => !l.includes('mirror migrated'));
    // One line while it waits, one when it gives up: not one per reconnection attempt.
    expect(lines).toHaveLength(2);
    expect(p.output()).toMatch(/"msg":"Redis does not answer yet: waiting for it"/);
    expect(p.output()).toMatch(/^clerk-invitation-mirror start: cannot reach Redis at redis:\/\/:\[redacted\]@127\.0\.0\.1:\d+ within 1500 ms \(connect ECONNREFUSED [^)]*\): .*REDIS_URL/m);
    expect(p.output()).not.toContain('hunter2secret');
  });

  it('a replica with its read API starts anyway: it serves its file, and /readyz says why it is not ready', async () => {
    const closed = `redis://127.0.0.1:${await freePort()}`;
    const p = start({ MIRROR_API_KEY: credentials.MIRROR_API_KEY, REDIS_URL: closed, MIRROR_DB_PATH: join(tmp.path, 'replica-alone/mirror.db') }, ['--role', 'replica,api']);
    const url = await startedUrl(p);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toMatch(/redis/i);
    p.child.kill('SIGTERM');
    expect(await exitWithinDeadline(p)).toBe(0);
  });
});
