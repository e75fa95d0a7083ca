// Scenarios: Redis set up or changed the way operators get it wrong, with the service started
// through its binary. An evicting policy or a Cluster node is refused at start with one line;
// a policy changed at runtime, a read-only replica or a full Redis fail /readyz naming the
// cause; a full Redis (noeviction at maxmemory) makes webhooks 503 while the worker waits
// quietly, and once memory is back every acknowledged event reaches the mirror; a deleted
// reconciliation schedule is put back.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { MAINTENANCE_QUEUE, RECONCILE_SCHEDULER_ID } from '../../src/maintenance/jobs.ts';
import { QUEUE_PREFIX } from '../../src/queue/names.ts';
import type { Simulator } from '../../src/simulator/index.ts';
import { BIN, freePort, ROOT, spawnService, type ServiceProc } from './helpers/procs.ts';
import { ackedNotInMirror, busyJobs, credentials, queueOf, recordResult, recordWebhookAnswers, runLoad, scale, scanLogs, scratchDir, startSim, serviceEnv, waitConverged } from './helpers/scenario.ts';
import { startRedisServer } from '../helpers/redis-server.ts';
import { waitUntil } from '../helpers/fixtures.ts';

const tmp = scratchDir('redis-ops');
const creds = credentials();
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  tmp.cleanup();
});

/** A redis-server of this file's own with `extra` arguments after the usual ones (later ones win). */
async function redisWith(name: string, extra: string[]): Promise<{ url: string; port: number; redis: Redis }> {
  const server = await startRedisServer({ dir: join(tmp.path, name), extraArgs: extra, readyTimeoutMs: 15_000 });
  cleanups.push(() => server.stop());
  const { url, port } = server;
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  cleanups.push(async () => redis.disconnect());
  return { url, port, redis };
}

/** `start` through the binary until it exits (it must, within `timeoutMs`): its code and output. */
async function startToExit(env: Record<string, string>, timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, 'start'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(await freePort()), RECONCILE_INTERVAL_MS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

async function readyz(service: ServiceProc): Promise<{ status: number; body: { status: string; failing?: Record<string, string>; checks?: string[] } }> {
  const res = await fetch(`${service.url}/readyz`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: (await res.json()) as { status: string; failing?: Record<string, string> } };
}

const simFor = async (opts: Parameters<typeof startSim>[1] = {}) => {
  const sim = await startSim(creds, opts);
  cleanups.push(() => sim.close());
  return sim;
};
const serviceFor = async (sim: Simulator, redis: { url: string }, name: string, extra: Record<string, string> = {}, roles: string[] = []) => {
  const service = await spawnService({ ...serviceEnv(creds, sim, redis, join(tmp.path, `${name}.db`)), BAPI_RATE_LIMIT: '100000', ...extra }, { roles });
  cleanups.push(() => service.stop());
  return service;
};
/** Lines of the service's output that are neither JSON log lines nor empty. */
const plainLines = (text: string) => text.split('\n').filter((l) => l.trim() && !l.startsWith('{'));

describe('Redis set up wrong is refused at start, with one line', () => {
  it('maxmemory-policy allkeys-lru', { timeout: 60_000 }, async () => {
    const { url } = await redisWith('lru', ['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru']);
    const sim = await simFor();
    const out = await startToExit(serviceEnv(creds, sim, { url }, join(tmp.path, 'lru.db')));
    const lines = plainLines(out.stderr);
    recordResult('redis-ops-evicting-policy', { exitCode: out.code, stderrLines: lines.length, line: lines[0], stdoutBytes: out.stdout.length });
    expect(out.code).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/maxmemory-policy is allkeys-lru/);
    expect(lines[0]).toContain('CONFIG SET maxmemory-policy noeviction');
    expect(lines[0]).toContain('redis.conf');
    // Refused before BullMQ connected: not its plain-text warning.
    expect(out.stdout + out.stderr).not.toContain('IMPORTANT! Eviction policy');
  });

  it('a Redis Cluster node (cluster_enabled:1)', { timeout: 60_000 }, async () => {
    const { url } = await redisWith('cluster', ['--cluster-enabled', 'yes', '--cluster-config-file', join(tmp.path, 'cluster', 'nodes.conf')]);
    const sim = await simFor();
    const out = await startToExit(serviceEnv(creds, sim, { url }, join(tmp.path, 'cluster.db')));
    const lines = plainLines(out.stderr);
    recordResult('redis-ops-cluster', { exitCode: out.code, stderrLines: lines.length, line: lines[0] });
    expect(out.code).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('cluster_enabled:1');
    expect(lines[0]).toContain('not supported');
    expect(out.stdout + out.stderr).not.toMatch(/MOVED|CLUSTERDOWN/);
  });
});

describe('/readyz names what is wrong with Redis at runtime', () => {
  it('maxmemory-policy changed while running, and back', { timeout: 90_000 }, async () => {
    const { url, redis } = await redisWith('runtime-policy', []);
    const sim = await simFor();
    const service = await serviceFor(sim, { url }, 'runtime-policy', {}, ['receiver', 'worker']);
    expect((await readyz(service)).status).toBe(200);
    await redis.config('SET', 'maxmemory-policy', 'volatile-lru');
    let failing: Record<string, string> = {};
    await waitUntil(async () => {
      const r = await readyz(service);
      failing = r.body.failing ?? {};
      return r.status === 503;
    }, '/readyz failing', 10_000);
    await redis.config('SET', 'maxmemory-policy', 'noeviction');
    await waitUntil(async () => (await readyz(service)).status === 200, '/readyz ready again', 10_000);
    recordResult('redis-ops-runtime-policy', { failing, readyAgain: true });
    expect(Object.keys(failing)).toEqual(['redis']);
    expect(failing.redis).toMatch(/maxmemory-policy is volatile-lru, not noeviction/);
  });

  it('a read-only replica: /readyz 503 naming it, while webhooks get 503', { timeout: 90_000 }, async () => {
    const primary = await redisWith('primary', []);
    const replica = await redisWith('replica', ['--replicaof', '127.0.0.1', String(primary.port)]);
    await waitUntil(async () => /master_link_status:up/.test(await replica.redis.info('replication')), 'the replica in sync', 15_000);
    const sim = await simFor();
    const service = await serviceFor(sim, replica, 'replica', {}, ['receiver']);
    const r = await readyz(service);
    const body = JSON.stringify({ data: { id: 'orginv_2replicaInv0000001', organization_id: 'org_2replicaOrg00000001', updated_at: Date.now() }, object: 'event', type: 'organizationInvitation.created', timestamp: Date.now() });
    const { svixHeaders } = await import('./helpers/http.ts');
    const hook = await fetch(`${service.url}/webhooks/clerk`, { method: 'POST', headers: svixHeaders(creds.signingSecret, body), body });
    const startWarning = service.output().split('\n').find((l) => l.includes('read-only replica'));
    recordResult('redis-ops-replica', { readyz: r, webhookStatus: hook.status, startWarning: !!startWarning });
    expect(r.status).toBe(503);
    expect(r.body.failing?.redis).toMatch(/read-only replica/);
    expect(hook.status).toBe(503);
    expect(startWarning).toBeDefined();
  });
});

const EVENTS = scale(600, 3000);
const RATE = scale(200, 300);
const OOM_HOLD_MS = scale(8_000, 60_000);

it(`noeviction Redis full during ${EVENTS} events, held ${OOM_HOLD_MS} ms: 503s, a quiet worker, and every acknowledged event in the mirror once memory is back`, { timeout: scale(150_000, 400_000) }, async () => {
  const { url, redis } = await redisWith('full', []);
  // BAPI slow enough that acknowledged jobs are still queued when Redis fills up.
  const sim = await simFor({ faults: { latencyMs: { min: 100, max: 200 } }, delivery: { retryScale: 0.001 } });
  const dbPath = join(tmp.path, 'full.db');
  const service = await serviceFor(sim, { url }, 'full');
  const q = queueOf(url);
  cleanups.push(() => q.close());
  // A filler of the test's own; a third into the load maxmemory drops to what Redis then uses,
  // so every write is refused until the filler is deleted (the operator freeing memory).
  await redis.set('test:filler', Buffer.alloc(8 * 1024 * 1024, 1));
  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
  let fullAt = 0;
  let busyAtFull = 0;
  const rec = recordWebhookAnswers(service.url);
  cleanups.push(async () => rec.restore());
  sim.delivery.addEndpoint(`${service.url}/webhooks/clerk`);

  const linesAt = () => service.output().split('\n').length;
  const linesBefore = linesAt();
  const load = await runLoad(sim, {
    events: EVENTS,
    ratePerSec: RATE,
    transitionShare: 0,
    onTick: async (done) => {
      if (fullAt || done < EVENTS / 3) return;
      await redis.config('SET', 'maxmemory', String((await usedMemory()) - 64 * 1024));
      fullAt = Date.now();
      busyAtFull = await busyJobs(q.queue);
    },
  });
  const oomReadyz = await readyz(service);
  const refusedAtFull = rec.attempts.filter((a) => a.status === 503 && a.startedAt > fullAt).length;
  const cmds = async () => Number(/total_commands_processed:(\d+)/.exec(await redis.info('stats'))![1]);
  const cmdsAt = await cmds();
  const holdStarted = Date.now();
  await sleep(OOM_HOLD_MS);
  const commandsPerSecWhileFull = Math.round(((await cmds()) - cmdsAt) / ((Date.now() - holdStarted) / 1000));
  const linesWhileFull = linesAt() - linesBefore;
  const refusedBeforeFree = rec.attempts.filter((a) => a.status === 503).length;
  const ackedBeforeFree = rec.acknowledged().size;
  const busyBeforeFree = await busyJobs(q.queue);
  await redis.del('test:filler');
  const freedAt = Date.now();

  const result = await waitConverged({ sim, queue: q.queue, dbPath, ids: load.touched, timeoutMs: scale(100_000, 300_000) });
  const acked = rec.acknowledged();
  const notInMirror = ackedNotInMirror(acked.values(), dbPath);
  const failed = await q.queue.getFailed();
  const out = service.output();
  const oomLines = out.split('\n').filter((l) => l.includes('OOM command not allowed')).length;
  const logs = scanLogs(out, creds);
  const figures = {
    events: load.events,
    webhookAnswers: rec.byStatus(),
    refused503WhileFull: refusedBeforeFree,
    refused503AfterFullDuringLoad: refusedAtFull,
    acknowledgedWhileFull: ackedBeforeFree,
    queuedJobsWhenFull: busyAtFull,
    queuedJobsBeforeFree: busyBeforeFree,
    acknowledged: acked.size,
    readyzWhileFull: oomReadyz,
    logLinesWhileFull: linesWhileFull,
    oomLogLines: oomLines,
    logBytes: out.length,
    redisCommandsPerSecWhileFull: commandsPerSecWhileFull,
    convergedMsAfterFree: result.ms,
    freedToConvergedMs: Date.now() - freedAt,
    inMirror: result.comparison.equal,
    ackedNotInMirror: notInMirror.length,
    failedJobs: failed.length,
    deliveryExhausted: sim.delivery.stats().exhausted,
    pidUnchanged: service.alive(),
  };
  recordResult('redis-ops-oom', figures);
  expect(refusedBeforeFree).toBeGreaterThan(EVENTS / 3);
  expect(ackedBeforeFree).toBeLessThan(EVENTS);
  expect(busyBeforeFree).toBeGreaterThan(0);
  expect(oomReadyz.status).toBe(503);
  expect(oomReadyz.body.failing?.redis).toMatch(/out of memory/);
  // One line per kind per 30 s (plus start-up's), not one per refused request or fetch try.
  expect(linesWhileFull).toBeLessThan(30);
  expect(oomLines).toBeLessThan(10);
  expect(notInMirror.map((a) => a.invitationId)).toEqual([]);
  expect(result.comparison.missing).toEqual([]);
  expect(result.comparison.different).toEqual([]);
  expect(failed.map((j) => j.failedReason)).toEqual([]);
  expect(logs.secrets).toEqual([]);
  expect(service.alive()).toBe(true);
});

it('the reconciliation schedule deleted from Redis is put back within the check interval', { timeout: 90_000 }, async () => {
  const { url, redis } = await redisWith('schedule', []);
  const sim = await simFor();
  const service = await serviceFor(sim, { url }, 'schedule', { RECONCILE_INTERVAL_MS: '60000' }, ['worker']);
  const queue = new Queue(MAINTENANCE_QUEUE, { connection: redis, prefix: QUEUE_PREFIX });
  cleanups.push(() => queue.close());
  await waitUntil(async () => !!(await queue.getJobScheduler(RECONCILE_SCHEDULER_ID)), 'the schedule made at start', 15_000);
  await queue.removeJobScheduler(RECONCILE_SCHEDULER_ID);
  const removedAt = Date.now();
  expect(await queue.getJobScheduler(RECONCILE_SCHEDULER_ID)).toBeFalsy();
  // The worker checks every 15 s (fillCheckMs).
  await waitUntil(async () => !!(await queue.getJobScheduler(RECONCILE_SCHEDULER_ID)), 'the schedule re-created', 20_000);
  const recreatedMs = Date.now() - removedAt;
  const back = (await queue.getJobScheduler(RECONCILE_SCHEDULER_ID))!;
  const line = service.output().split('\n').find((l) => l.includes('reconciliation schedule was missing'));
  const checks = (await readyz(service)).body;
  recordResult('redis-ops-schedule', { recreatedMs, every: back.every, logged: !!line, readyz: checks });
  expect(back.every).toBe(60_000);
  expect(line).toBeDefined();
  expect(checks.checks).toContain('reconciliation');
});
