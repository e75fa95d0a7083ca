// Scenario: the mirror on several hosts. One receiver, two workers and two replicas run as
// processes of their own (`start --role`), a third replica runs in the test process through
// the library (createReplica), all on one Redis. 2,000 signed changes arrive duplicated and
// reordered while a replica is SIGKILLed and restarted and Redis is SIGKILLed and restarted
// (AOF). Every replica must end equal to the simulator's truth, row for row, for the BAPI
// calls of a single host; then a replica started late, one offline past the stream's
// retention, tombstones, and Redis losing everything (FLUSHALL) and a backfill refilling it.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createReplica, type ReplicaMirror } from '../../src/replica/create.ts';
import { mirrorKeys } from '../../src/state/keys.ts';
import type { Simulator } from '../../src/simulator/index.ts';
import { runCli } from '../helpers/child.ts';
import { httpClient, svixHeaders } from './helpers/http.ts';
import { spawnService, startRedis, type RedisProc, type ServiceEnv, type ServiceProc } from './helpers/procs.ts';
import { compareMirror, credentials, queueOf, recordResult, releaseScenario, runLoad, scale, scanLogs, scratchDir, serviceEnv, startSim, waitConverged } from './helpers/scenario.ts';

const tmp = scratchDir('replicas');
const creds = credentials();
let redis: RedisProc;
let sim: Simulator;
let receiver: ServiceProc;
const workers: ServiceProc[] = [];
const replicas = new Map<string, ServiceProc>();
let library: ReplicaMirror | undefined;
let q: ReturnType<typeof queueOf>;
let env: ServiceEnv;
let replicaEnv: (name: string) => ServiceEnv;
const figures: Record<string, unknown> = {};

const EVENTS = scale(2000, 10_000);
const RATE = scale(400, 500);
const GET_ROUTE = 'GET /v1/organizations/:organization_id/invitations/:invitation_id';
const LIST_ROUTE = 'GET /v1/organizations/:organization_id/invitations';
const dbOf = (name: string) => join(tmp.path, `${name}.db`);
const LIBRARY_DB = dbOf('library');

afterAll(async () => {
  await library?.close();
  await releaseScenario(tmp, { q, services: [receiver, ...workers, ...replicas.values()], sim, redis });
});

async function startReplica(name: string): Promise<ServiceProc> {
  const r = await spawnService(replicaEnv(name), { roles: ['replica'] });
  replicas.set(name, r);
  return r;
}

async function readyz(p: ServiceProc): Promise<{ status: number; body: { failing?: Record<string, string> } }> {
  const res = await fetch(`${p.url}/readyz`);
  return { status: res.status, body: (await res.json()) as { failing?: Record<string, string> } };
}

/** Every replica file (processes and the library's) holds exactly the truth: each live invitation equal, nothing else live. */
async function expectAllConverged(what: string, timeoutMs = scale(60_000, 180_000)) {
  const truth = sim.store.truth();
  const ids = truth.map((t) => t.id);
  const files = [...[...replicas.keys()].map(dbOf), LIBRARY_DB];
  for (const path of files) {
    const r = await waitConverged({ sim, queue: q.queue, dbPath: path, ids, timeoutMs });
    expect(r.comparison.missing, `${what}: ${path} missing`).toEqual([]);
    expect(r.comparison.different, `${what}: ${path} different`).toEqual([]);
    // Nothing live that Clerk does not have (removals come with the replica's next batch).
    await waitFor(async () => counts(path).live === truth.length, `${what}: ${path} to hold ${truth.length} live rows, not ${counts(path).live}`, timeoutMs);
  }
}

/** Live rows and tombstones of a replica file. */
function counts(path: string): { live: number; tombstones: number } {
  const db = new Database(path, { readonly: true });
  try {
    const live = db.prepare('SELECT count(*) FROM organization_invitations WHERE deleted_at IS NULL').pluck().get() as number;
    const tombstones = db.prepare('SELECT count(*) FROM organization_invitations WHERE deleted_at IS NOT NULL').pluck().get() as number;
    return { live, tombstones };
  } finally {
    db.close();
  }
}

const backfill = async () => {
  const r = await runCli(['backfill', '--json'], { ...env, LOG_LEVEL: 'warn' });
  expect(r.code, r.output).toBe(0);
  return JSON.parse(r.output.trim().split('\n').at(-1)!) as { rows: Record<string, number>; requests: number };
};

beforeAll(async () => {
  redis = await startRedis(join(tmp.path, 'redis'));
  // Svix's schedule times 0.001: what Redis refuses while down is delivered again soon.
  sim = await startSim(creds, { faults: { latencyMs: { min: 2, max: 15 } }, delivery: { duplicateRate: 0.2, reorderRate: 0.3, reorderWindowMs: 100, retryScale: 0.001 } });
  env = { ...serviceEnv(creds, sim, redis, dbOf('unused')), BAPI_RATE_LIMIT: '100000', BAPI_TIMEOUT_MS: '5000', LOG_LEVEL: 'debug' };
  // A replica needs no Clerk credential: none is given.
  replicaEnv = (name) => ({ REDIS_URL: redis.url, MIRROR_DB_PATH: dbOf(name), LOG_LEVEL: 'debug' });
  [receiver] = await Promise.all([spawnService(env, { roles: ['receiver'] }), startReplica('a'), startReplica('b')]);
  workers.push(...(await Promise.all([spawnService(env, { roles: ['worker'] }), spawnService(env, { roles: ['worker'] })])));
  q = queueOf(redis.url);
  library = await createReplica({ redisUrl: redis.url, path: LIBRARY_DB, timeoutMs: 30_000 });
  // The first fill (of an empty instance): replicas report ready only once the state is filled.
  expect((await readyz(replicas.get('a')!)).body.failing?.replica).toMatch(/not been filled/);
  await backfill();
  for (const r of replicas.values()) await waitFor(async () => (await readyz(r)).status === 200, 'a replica to be ready');
  sim.delivery.addEndpoint(`${receiver.url}/webhooks/clerk`);
}, 120_000);

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

it(`${EVENTS} duplicated and reordered changes, a replica SIGKILLed and Redis SIGKILLed meanwhile: every replica equals the truth, for one host's BAPI calls`, { timeout: scale(180_000, 600_000) }, async () => {
  let replicaKilled = false;
  let redisKilled = false;
  const restarts: Promise<void>[] = [];
  const load = await runLoad(sim, {
    events: EVENTS,
    ratePerSec: RATE,
    onTick: async (done) => {
      if (!replicaKilled && done >= EVENTS * 0.3) {
        replicaKilled = true;
        await replicas.get('a')!.kill('SIGKILL');
        restarts.push(sleep(1000).then(() => replicas.get('a')!.start()));
      }
      if (!redisKilled && done >= EVENTS * 0.6) {
        redisKilled = true;
        await redis.kill('SIGKILL');
        restarts.push(sleep(1500).then(() => redis.start()));
      }
    },
  });
  await Promise.all(restarts);
  await expectAllConverged('after the load');
  const calls = sim.stats().byRoute[GET_ROUTE] ?? 0;
  const pages = sim.stats().byRoute[LIST_ROUTE] ?? 0;

  // A replica started after the load loads the snapshot: no BAPI call.
  await startReplica('late');
  await expectAllConverged('with the late replica');
  expect(sim.stats().byRoute[GET_ROUTE] ?? 0).toBe(calls);

  const logs = scanLogs([receiver, ...workers, ...replicas.values()].map((p) => p.output()).join(''), creds);
  Object.assign(figures, {
    events: load.events,
    invitations: load.touched.size,
    delivered: sim.delivery.stats().delivered,
    duplicated: sim.delivery.stats().duplicated,
    bapiGets: calls,
    bapiListPages: pages,
    bapiGetsPerInvitation: Math.round((calls / load.touched.size) * 100) / 100,
    bapiGetsOfLateReplica: (sim.stats().byRoute[GET_ROUTE] ?? 0) - calls,
    replicas: replicas.size + 1,
    failedJobs: (await q.queue.getFailed()).length,
  });
  // What one host costs: coalescing keeps a duplicated, reordered invitation at two fetches at
  // most, and a burst in one organization comes through its list pages (up to 500 a call).
  expect(calls + pages).toBeLessThanOrEqual(2 * load.touched.size);
  expect(calls + 500 * pages).toBeGreaterThanOrEqual(load.touched.size);
  expect(await q.queue.getFailed()).toEqual([]);
  // Both workers fetched: the work is shared, the result is not split between hosts.
  for (const w of workers) expect(w.output()).toMatch(/"msg":"invitation synced"/);
  expect(logs.secrets).toEqual([]);
  expect(logs.emails).toEqual([]);
});

it('a replica offline past the stream retention reloads the snapshot and converges', { timeout: scale(90_000, 300_000) }, async () => {
  const b = replicas.get('b')!;
  await b.stop();
  const pending = sim.store.truth().filter((t) => t.status === 'pending').slice(0, 50);
  for (const inv of pending) sim.store.acceptInvitation(inv.id);
  await waitConverged({ sim, queue: q.queue, dbPath: LIBRARY_DB, ids: pending.map((p) => p.id), timeoutMs: 30_000 });
  // Retention passed: everything the stream held until now is trimmed, as age trimming would.
  const r = new Redis(redis.url);
  try {
    await r.xtrim(mirrorKeys().changes, 'MINID', `${Date.now()}-0`);
  } finally {
    r.disconnect();
  }
  await b.start();
  await expectAllConverged('after the offline replica came back');
  expect(b.output()).toMatch(/replica missed changes the stream no longer holds: loading the snapshot again/);
});

it('tombstones reach every replica', { timeout: 60_000 }, async () => {
  const org = sim.store.truth()[0]!.organization_id;
  const doomed = sim.store.truth().filter((t) => t.organization_id === org);
  sim.store.deleteOrganization(org, { webhook: false });
  // Clerk sends no invitation event when an organization goes; a late revoke of each does here.
  const http = httpClient(receiver.url);
  for (const inv of doomed) {
    const body = JSON.stringify({ type: 'organizationInvitation.revoked', object: 'event', data: { ...inv, status: 'revoked', updated_at: inv.updated_at + 1 }, timestamp: Date.now() });
    const res = await http.send({ path: '/webhooks/clerk', headers: svixHeaders(creds.signingSecret, body), body });
    expect(res.status).toBe(200);
  }
  http.close();
  await expectAllConverged('after the tombstones');
  for (const name of replicas.keys()) {
    const db = new Database(dbOf(name), { readonly: true });
    const tomb = db.prepare('SELECT count(*) FROM organization_invitations WHERE deleted_at IS NOT NULL AND organization_id = ?').pluck().get(org);
    db.close();
    expect(tomb, name).toBe(doomed.length);
  }
  for (const inv of doomed.slice(0, 5)) {
    await expect(library!.getOrganizationInvitation({ organizationId: org, invitationId: inv.id })).rejects.toMatchObject({ status: 404 });
  }
  figures.tombstones = doomed.length;
});

it('Redis loses everything: replicas keep serving and report stale; a backfill refills the state and they converge, deletions included', { timeout: scale(90_000, 300_000) }, async () => {
  const before = counts(dbOf('a'));
  const sample = sim.store.truth()[0]!;
  const r = new Redis(redis.url);
  try {
    await r.flushall();
  } finally {
    r.disconnect();
  }
  for (const p of replicas.values()) {
    await waitFor(async () => (await readyz(p)).body.failing?.replica?.includes('Redis lost the shared state') ?? false, 'the replica to report stale');
  }
  await waitFor(async () => (await library!.status()).state === 'stale', 'the library replica to report stale');
  // Still serving what it had.
  expect(counts(dbOf('a')).live).toBe(before.live);
  expect((await library!.getOrganizationInvitation({ organizationId: sample.organization_id, invitationId: sample.id })).id).toBe(sample.id);

  // Meanwhile Clerk deletes an organization (no webhook) and a new invitation arrives (webhook).
  const gone = sim.store.truth().find((t) => t.organization_id !== sample.organization_id)!.organization_id;
  const goneIds = sim.store.truth().filter((t) => t.organization_id === gone).map((t) => t.id);
  sim.store.deleteOrganization(gone, { webhook: false });
  const fresh = sim.store.createInvitation(sample.organization_id, { emailAddress: 'after.flush@example.com' });
  await waitConverged({ sim, queue: q.queue, dbPath: LIBRARY_DB, ids: [fresh.id], timeoutMs: 30_000 });
  expect((await library!.status()).state).toBe('stale');

  const filled = await backfill();
  await expectAllConverged('after the refill');
  for (const p of replicas.values()) await waitFor(async () => (await readyz(p)).status === 200, 'the replica to be ready again');
  expect((await library!.status()).state).toBe('following');
  for (const name of [...replicas.keys(), 'library']) {
    const db = new Database(dbOf(name), { readonly: true });
    const left = db.prepare('SELECT count(*) FROM organization_invitations WHERE organization_id = ?').pluck().get(gone);
    db.close();
    expect(left, `${name} still holds the deleted organization's invitations`).toBe(0);
  }
  // Replica files never emptied meanwhile: compareMirror saw the old rows throughout.
  expect(compareMirror(dbOf('b'), sim.store.truth(), [sample.id]).equal).toBe(1);
  Object.assign(figures, { refillRequests: filled.requests, refillRows: filled.rows, deletedWithoutWebhook: goneIds.length });
  recordResult('replicas', figures);
});
