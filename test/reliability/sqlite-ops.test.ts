// Scenarios: the replica's SQLite file going wrong under a running service (started through
// its binary), as operators and disks make it go wrong. The file deleted, or replaced by a
// backup restored by rename: the replica notices, opens the path again and converges, readers
// in other processes follow, /readyz names the file meanwhile. The disk full (a small tmpfs):
// writes fail, are logged once in a while, fail /readyz and are retried, and once space is
// back the file equals the shared state exactly. Another process holding the write lock for
// 3 s: /healthz and webhooks keep being answered during it. A corrupted file: /readyz 503
// naming it. Start-up refusals that name the file and the fix; a read-only api role on a
// read-only filesystem. Each ends with the file equal to the shared state where the fault
// allows (src/replica/verify.ts) and to the simulator's truth.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createMirror } from '../../src/index.ts';
import { expectedMigrations } from '../../src/mirror/migrate.ts';
import { openMirrorDb } from '../../src/mirror/open.ts';
import { isEqualReport, verifyReplica, type VerifyReport } from '../../src/replica/verify.ts';
import { packageVersion } from '../../src/bapi/client.ts';
import { mirrorKeys } from '../../src/state/keys.ts';
import { SharedState } from '../../src/state/shared-state.ts';
import type { Simulator } from '../../src/simulator/index.ts';
import { runCli } from '../helpers/child.ts';
import { invitation } from '../helpers/fixtures.ts';
import { seedMirror } from '../helpers/mirror.ts';
import { BIN, ROOT, freePort, spawnService, startRedis, type RedisProc, type ServiceEnv, type ServiceProc } from './helpers/procs.ts';
import { compareMirror, credentials, queueOf, recordResult, recordWebhookAnswers, runLoad, scale, scanLogs, scratchDir, serviceEnv, startSim, waitConverged } from './helpers/scenario.ts';

const tmp = scratchDir('sqlite-ops');
const creds = credentials();
const cleanups: (() => Promise<unknown> | unknown)[] = [];
const mounts: string[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
  for (const m of mounts.reverse()) unmount(m);
  tmp.cleanup();
});

const EVENTS = scale(150, 1500);

function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'ignore' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
  }
}

/** `mount` (as root, which this suite runs as): a small tmpfs, or a read-only bind of `source`. */
function mount(dir: string, args: string[]): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', [...args, dir]);
  mounts.push(dir);
}

interface Stack {
  redis: RedisProc;
  sim: Simulator;
  service: ServiceProc;
  dbPath: string;
  state: SharedState;
  q: ReturnType<typeof queueOf>;
}

/** A Redis, a simulated Clerk and the service (every role) with its mirror at `dbPath`, ready. */
async function stack(name: string, dbPath = join(tmp.path, `${name}.db`)): Promise<Stack> {
  const redis = await startRedis(join(tmp.path, `${name}-redis`), { fsync: 'everysec' });
  cleanups.push(() => redis.stop());
  const sim = await startSim(creds, { faults: { latencyMs: { min: 1, max: 5 } } });
  cleanups.push(() => sim.close());
  const service = await spawnService({ ...serviceEnv(creds, sim, redis, dbPath), BAPI_RATE_LIMIT: '100000' });
  cleanups.push(() => service.stop());
  sim.delivery.addEndpoint(`${service.url}/webhooks/clerk`);
  const q = queueOf(redis.url);
  cleanups.push(() => q.close());
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  connection.on('error', () => {});
  cleanups.push(() => connection.disconnect());
  // Automatic maintenance is off in scenarios (procs.ts): fill the (empty) state by hand.
  const filled = await runCli(['backfill'], { ...serviceEnv(creds, sim, redis, dbPath), LOG_LEVEL: 'warn' });
  expect(filled.code, filled.output).toBe(0);
  await waitFor('the service to be ready', async () => (await readyz(service)).status === 200, 30_000);
  return { redis, sim, service, dbPath, state: new SharedState(connection, mirrorKeys()), q };
}

interface Readyz {
  status: number;
  failing: Record<string, string>;
}

async function readyz(service: ServiceProc): Promise<Readyz> {
  const res = await fetch(`${service.url}/readyz`, { signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { failing?: Record<string, string> };
  return { status: res.status, failing: body.failing ?? {} };
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what} within ${timeoutMs} ms${last ? ` (${(last as Error).message})` : ''}`);
}

/** The file at `path` (opened afresh, read-only) compared with the shared state. */
async function fileVsState(path: string, state: SharedState): Promise<VerifyReport> {
  const conn = openMirrorDb({ path, readonly: true, watchMs: 0 });
  try {
    return await verifyReplica(conn, state);
  } finally {
    conn.close();
  }
}

/** Waits until the file at the path equals the shared state and the simulator's truth for `ids`. */
async function converged(s: Stack, ids: Iterable<string>, timeoutMs = scale(60_000, 180_000)) {
  const all = [...ids];
  const started = Date.now();
  const result = await waitConverged({ sim: s.sim, queue: s.q.queue, dbPath: s.dbPath, ids: all, timeoutMs });
  let report = await fileVsState(s.dbPath, s.state);
  while (!isEqualReport(report) && Date.now() - started < timeoutMs) {
    await sleep(200);
    report = await fileVsState(s.dbPath, s.state);
  }
  return { ms: Date.now() - started, truth: result.comparison, state: report };
}

const summary = (r: VerifyReport) => ({ stateSize: r.stateSize, fileRows: r.fileRows, missing: r.missing.length, extra: r.extra.length, different: r.different.length });

const sigstop = (r: RedisProc) => process.kill(r.pid(), 'SIGSTOP');
const sigcont = (r: RedisProc) => process.kill(r.pid(), 'SIGCONT');

describe('the file deleted or replaced under a running service', () => {
  it('a backup restored by rename, then the file deleted: the replica opens the path again, /readyz names it meanwhile, readers follow, a restart keeps the rows', { timeout: scale(120_000, 400_000) }, async () => {
    const s = await stack('reopen');
    const first = await runLoad(s.sim, { events: EVENTS, ratePerSec: 300, transitionShare: 0.3 });
    expect((await converged(s, first.touched)).state.missing).toEqual([]);
    // A reader in another process (this one), as services on the host use the library.
    const reader = createMirror({ path: s.dbPath, readonly: true });
    cleanups.push(() => reader.close());

    // An online backup (what `sqlite3 .backup` does), then more changes the backup lacks.
    const backup = join(tmp.path, 'reopen-backup.db');
    const src = new Database(s.dbPath, { readonly: true });
    await src.backup(backup);
    src.close();
    const second = await runLoad(s.sim, { events: EVENTS, ratePerSec: 300, transitionShare: 0.3 });
    const ids = new Set([...first.touched, ...second.touched]);
    expect((await converged(s, ids)).state.missing).toEqual([]);

    // Redis is paused (SIGSTOP) around each fault so the window in which the replica cannot
    // catch up stays open long enough to look at /readyz; the file check needs no Redis.
    sigstop(s.redis);
    renameSync(backup, s.dbPath);
    const whileReplaced = await waitFor(
      '/readyz to name the replaced file',
      async () => {
        const r = await readyz(s.service);
        return r.status === 503 && Object.values(r.failing).some((m) => m.includes(s.dbPath) && m.includes('replaced')) && r;
      },
      20_000,
    );
    await waitFor('the replica to log the replaced file', async () => s.service.output().includes('was replaced while the replica had it open'), 10_000);
    sigcont(s.redis);
    const afterReplace = await converged(s, ids);
    await waitFor('/readyz 200 again', async () => (await readyz(s.service)).status === 200, 20_000);
    // The reader follows the file now at the path (its timer): every invitation as the truth has it.
    const readerSees = async () => {
      const truth = new Map(s.sim.store.truth().map((t) => [t.id, t]));
      let equal = 0;
      for (const id of ids) {
        const want = truth.get(id)!;
        const got = await reader.getOrganizationInvitation({ organizationId: want.organization_id, invitationId: id }).catch(() => undefined);
        if (got && JSON.stringify(got.raw) === JSON.stringify(want)) equal++;
      }
      return equal;
    };
    await waitFor('the reader to read the restored file, caught up', async () => (await readerSees()) === ids.size, 20_000);

    sigstop(s.redis);
    unlinkSync(s.dbPath);
    const whileDeleted = await waitFor(
      '/readyz to name the deleted file',
      async () => {
        const r = await readyz(s.service);
        return r.status === 503 && Object.values(r.failing).some((m) => m.includes(s.dbPath) && /deleted|recreated/.test(m)) && r;
      },
      20_000,
    );
    sigcont(s.redis);
    const afterDelete = await converged(s, ids);
    await waitFor('/readyz 200 again', async () => (await readyz(s.service)).status === 200, 20_000);
    await waitFor('the reader to read the recreated file', async () => (await readerSees()) === ids.size, 20_000);

    // Restarted, the service serves the same rows at once: nothing was written to a lost file.
    await s.service.stop();
    const stopped = await fileVsState(s.dbPath, s.state);
    await s.service.start();
    const restarted = compareMirror(s.dbPath, s.sim.store.truth(), ids);

    const logs = scanLogs(s.service.output(), creds);
    recordResult('sqlite-ops-file-replaced', {
      invitations: ids.size,
      readyzWhileReplaced: whileReplaced.failing,
      readyzWhileDeleted: whileDeleted.failing,
      msToConvergeAfterRestore: afterReplace.ms,
      msToConvergeAfterDelete: afterDelete.ms,
      afterRestore: summary(afterReplace.state),
      afterDelete: summary(afterDelete.state),
      afterRestart: { equalToState: isEqualReport(stopped), equalToTruth: restarted.equal },
      logSecretHits: logs.secrets,
      logEmails: logs.emails,
    });
    for (const r of [afterReplace, afterDelete]) {
      expect(summary(r.state)).toMatchObject({ missing: 0, extra: 0, different: 0 });
      expect(r.truth.missing).toEqual([]);
      expect(r.truth.different).toEqual([]);
    }
    expect(isEqualReport(stopped)).toBe(true);
    expect(restarted.equal).toBe(ids.size);
    expect(logs.secrets).toEqual([]);
    expect(logs.emails).toEqual([]);
  });
});

describe('the disk full under the replica', () => {
  it('writes fail, are logged rate-limited and fail /readyz while it lasts; once space is freed the file equals the shared state', { timeout: scale(120_000, 400_000) }, async () => {
    // A tmpfs of its own (mount needs root; this suite runs as root), filled up by a file.
    const dir = join(tmp.path, 'full');
    mount(dir, ['-t', 'tmpfs', '-o', `size=${scale(8, 24)}m`, 'tmpfs']);
    const s = await stack('full', join(dir, 'mirror.db'));
    cleanups.push(() => s.service.stop()); // before the unmount
    const first = await runLoad(s.sim, { events: EVENTS, ratePerSec: 300, transitionShare: 0.3 });
    expect((await converged(s, first.touched)).state.missing).toEqual([]);

    const filler = join(dir, 'filler');
    const fd = openSync(filler, 'w');
    const chunk = Buffer.alloc(64 * 1024, 1);
    let filled = 0;
    try {
      for (;;) filled += writeSync(fd, chunk);
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    } finally {
      closeSync(fd);
    }
    const rec = recordWebhookAnswers(s.service.url);
    cleanups.push(() => rec.restore());
    // New invitations only: each acknowledged event is one row the file must end up with.
    const second = await runLoad(s.sim, { events: 100, ratePerSec: 200, transitionShare: 0 });
    const failing = await waitFor(
      '/readyz to name the full disk',
      async () => {
        const r = await readyz(s.service);
        return r.status === 503 && r.failing.replica?.includes(s.dbPath) && r.failing.replica.includes('SQLITE_FULL') && r;
      },
      30_000,
    );
    await sleep(3000);
    const stillFailing = await readyz(s.service);
    const logged = s.service
      .output()
      .split('\n')
      .filter((l) => l.includes('replica cannot write its file'));
    const whileFull = compareMirror(s.dbPath, s.sim.store.truth(), second.touched);

    unlinkSync(filler);
    const freedAt = Date.now();
    await waitFor('/readyz 200 once space is back', async () => (await readyz(s.service)).status === 200, 30_000);
    const readyAfterMs = Date.now() - freedAt;
    const ids = new Set([...first.touched, ...second.touched]);
    const after = await converged(s, ids);
    rec.restore();
    // Webhook deliveries only (the recorder also sees this test's own /readyz requests).
    const acked = new Map([...rec.acknowledged()].filter(([svixId]) => svixId));
    const ackedInFile = compareMirror(s.dbPath, s.sim.store.truth(), [...acked.values()].map((a) => a.invitationId!)).equal;
    const back = s.service.output().includes('replica writes its file again');

    recordResult('sqlite-ops-disk-full', {
      tmpfsBytes: scale(8, 24) * 1024 * 1024,
      fillerBytes: filled,
      eventsWhileFull: second.events,
      acknowledgedWhileFull: acked.size,
      inFileWhileFull: whileFull.equal,
      readyzWhileFull: failing.failing.replica,
      readyzStillFailingAfter3s: stillFailing.status,
      writeFailureLogLines: logged.length,
      readyAfterSpaceFreedMs: readyAfterMs,
      convergeMs: after.ms,
      acknowledgedInFileAfter: ackedInFile,
      afterSpaceFreed: summary(after.state),
    });
    expect(failing.failing.replica).toContain('the disk is full');
    expect(stillFailing.status).toBe(503);
    expect(whileFull.equal).toBeLessThan(second.touched.size);
    // Logged, once in a while: not once per retry.
    expect(logged.length).toBeGreaterThan(0);
    expect(logged.length).toBeLessThanOrEqual(3);
    expect(logged[0]).toContain('SQLITE_FULL');
    expect(back).toBe(true);
    expect(acked.size).toBe(second.events);
    expect(ackedInFile).toBe(acked.size);
    expect(summary(after.state)).toMatchObject({ missing: 0, extra: 0, different: 0 });
    expect(after.truth.missing).toEqual([]);
    expect(after.truth.different).toEqual([]);
    await s.service.stop();
  });
});

describe('another process holding the write lock', () => {
  it('for 3 s: /healthz and webhooks are answered during it, /readyz names the lock, and the replica catches up after', { timeout: scale(120_000, 300_000) }, async () => {
    const s = await stack('locked');
    const first = await runLoad(s.sim, { events: 50, ratePerSec: 200, transitionShare: 0.3 });
    expect((await converged(s, first.touched)).state.missing).toEqual([]);
    const rec = recordWebhookAnswers(s.service.url);
    cleanups.push(() => rec.restore());

    const holder = spawn(
      process.execPath,
      [
        '-e',
        `const db = new (require('better-sqlite3'))(process.argv[1]); db.exec('BEGIN IMMEDIATE'); console.log('locked'); setTimeout(() => { db.exec('COMMIT'); console.log('released'); }, 3000);`,
        s.dbPath,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    cleanups.push(() => holder.kill('SIGKILL'));
    let out = '';
    let releasedAt = 0;
    holder.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!releasedAt && out.includes('released')) releasedAt = Date.now();
    });
    const exited = new Promise((resolve) => holder.on('exit', resolve));
    await waitFor('the other process to hold the lock', async () => out.includes('locked'), 10_000);
    const lockedAt = Date.now();
    // Changes keep coming while the lock is held: the replica tries to write them.
    const load = runLoad(s.sim, { events: 40, ratePerSec: 40, transitionShare: 0 });
    const probes: { startedAt: number; endedAt: number; status: number }[] = [];
    const probe = async () => {
      const p = { startedAt: Date.now(), endedAt: 0, status: 0 };
      probes.push(p);
      const res = await fetch(`${s.service.url}/healthz`);
      await res.arrayBuffer();
      p.status = res.status;
      p.endedAt = Date.now();
    };
    const pending: Promise<void>[] = [];
    const readyzDuringLock = sleep(1500).then(() => readyz(s.service));
    // One /healthz every 200 ms from 0.5 s into the lock to 2.5 s, none waiting for another.
    while (Date.now() - lockedAt < 2500) {
      await sleep(200);
      if (Date.now() - lockedAt >= 500) pending.push(probe());
    }
    await Promise.all(pending);
    const whileLocked = await readyzDuringLock;
    await exited;
    const second = await load;
    const ids = new Set([...first.touched, ...second.touched]);
    const after = await converged(s, ids);
    rec.restore();
    // Webhook deliveries only (the recorder also sees this test's own /healthz and /readyz requests).
    const duringLock = rec.attempts.filter((a) => a.svixId && a.startedAt >= lockedAt && a.startedAt < releasedAt - 100);

    recordResult('sqlite-ops-write-lock', {
      lockHeldMs: releasedAt - lockedAt,
      healthzProbesDuringLock: probes.length,
      healthzAnsweredBeforeRelease: probes.filter((p) => p.endedAt < releasedAt).length,
      healthzSlowestMs: Math.max(...probes.map((p) => p.endedAt - p.startedAt)),
      webhooksDuringLock: duringLock.length,
      webhooksAnsweredBeforeRelease: duringLock.filter((a) => a.endedAt < releasedAt).length,
      webhookStatusesDuringLock: [...new Set(duringLock.map((a) => a.status))],
      readyzDuringLock: whileLocked,
      convergeMsAfterRelease: after.ms,
      after: summary(after.state),
    });
    expect(probes.length).toBeGreaterThanOrEqual(8);
    for (const p of probes) {
      expect(p.status).toBe(200);
      // Started while the lock was held, answered before it was released.
      expect(p.endedAt).toBeLessThan(releasedAt);
    }
    expect(duringLock.length).toBeGreaterThan(0);
    for (const a of duringLock) {
      expect(a.status).toBe(200);
      expect(a.endedAt).toBeLessThan(releasedAt);
    }
    expect(whileLocked.status).toBe(503);
    expect(whileLocked.failing.replica).toMatch(/SQLITE_BUSY.*another process holds its write lock/);
    expect(whileLocked.failing.replica).toContain(s.dbPath);
    expect(summary(after.state)).toMatchObject({ missing: 0, extra: 0, different: 0 });
    expect(after.truth.missing).toEqual([]);
    expect(after.truth.different).toEqual([]);
  });
});

describe('a corrupted file', () => {
  it('reads fail and /readyz says 503 naming the file; deleting it makes the replica load the shared state into a new one', { timeout: scale(120_000, 300_000) }, async () => {
    const s = await stack('corrupt');
    const first = await runLoad(s.sim, { events: EVENTS, ratePerSec: 300, transitionShare: 0.3 });
    expect((await converged(s, first.touched)).state.missing).toEqual([]);
    const sample = s.sim.store.truth().filter((t) => first.touched.has(t.id)).slice(0, 20);
    const get = (t: { id: string; organization_id: string }) =>
      fetch(`${s.service.url}/v1/organizations/${t.organization_id}/invitations/${t.id}`, { headers: { authorization: `Bearer ${creds.apiKey}` } }).then(async (r) => {
        await r.arrayBuffer();
        return r.status;
      });
    expect(new Set(await Promise.all(sample.map(get)))).toEqual(new Set([200]));

    // Everything into the main file, then garbage over the pages of the invitations' table and indexes.
    const db = new Database(s.dbPath);
    db.pragma('busy_timeout = 5000');
    db.pragma('wal_checkpoint(TRUNCATE)');
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    const roots = db.prepare("SELECT rootpage FROM sqlite_master WHERE tbl_name = 'organization_invitations' AND rootpage > 1").pluck().all() as number[];
    db.close();
    const fd = openSync(s.dbPath, 'r+');
    for (const page of roots) writeSync(fd, randomBytes(pageSize), 0, pageSize, (page - 1) * pageSize);
    closeSync(fd);

    const statuses = await Promise.all(sample.map(get));
    const failing = await waitFor(
      '/readyz to name the corrupted file',
      async () => {
        const r = await readyz(s.service);
        return r.status === 503 && r.failing.mirror?.includes(s.dbPath) && r;
      },
      10_000,
    );

    // The operator's fix: delete it (the replica's file is a copy of the shared state).
    unlinkSync(s.dbPath);
    const after = await converged(s, first.touched);
    await waitFor('/readyz 200 again', async () => (await readyz(s.service)).status === 200, 20_000);
    const afterStatuses = await Promise.all(sample.map(get));
    recordResult('sqlite-ops-corrupted', {
      pagesOverwritten: roots.length,
      readStatusesWhileCorrupted: [...new Set(statuses)],
      readyzWhileCorrupted: failing.failing.mirror,
      convergeMsAfterDelete: after.ms,
      readStatusesAfter: [...new Set(afterStatuses)],
      after: summary(after.state),
    });
    expect(new Set(statuses)).toEqual(new Set([500]));
    expect(failing.failing.mirror).toMatch(/is corrupted \(.*malformed.*\): move it away or delete it/);
    expect(new Set(afterStatuses)).toEqual(new Set([200]));
    expect(summary(after.state)).toMatchObject({ missing: 0, extra: 0, different: 0 });
    expect(after.truth.missing).toEqual([]);
    expect(after.truth.different).toEqual([]);
  });
});

/** `start --role …` (or another command) through the binary until it exits: its code and the lines of its stderr that are not JSON logs. */
async function runToExit(args: string[], env: Record<string, string>, { withoutDacOverride = false } = {}): Promise<{ code: number | null; lines: string[] }> {
  // Root without the capabilities that bypass file permissions: a read-only file is then
  // refused as for any user, while the checkout (wherever CI cloned it) stays readable.
  const command = withoutDacOverride ? ['setpriv', '--bounding-set=-dac_override,-dac_read_search,-fowner', process.execPath] : [process.execPath];
  const child = spawn(command[0]!, [...command.slice(1), BIN, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/tmp', NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(await freePort()), RECONCILE_INTERVAL_MS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stdout.resume();
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearTimeout(timer);
  return { code, lines: stderr.split('\n').filter((l) => l.trim() && !l.startsWith('{')) };
}

describe('start-up names the file and what to do', () => {
  it('not a database, a directory, a missing directory or a file on a read-only filesystem, permission denied, a newer version', { timeout: 120_000 }, async () => {
    const dir = join(tmp.path, 'startup');
    mkdirSync(dir, { recursive: true });
    const env = (path: string) => ({ REDIS_URL: 'redis://127.0.0.1:1', MIRROR_DB_PATH: path });
    const garbage = join(dir, 'garbage.db');
    writeFileSync(garbage, randomBytes(16_384));
    const directory = join(dir, 'a-directory');
    mkdirSync(directory);
    const ro = join(tmp.path, 'startup-ro');
    const roSource = join(dir, 'ro-source');
    seedMirror(roSource, 'mirror.db', [invitation({ id: 'orginv_ro1' })]);
    mount(ro, ['--bind', '-o', 'ro', roSource]);
    const newer = seedMirror(dir, 'newer.db', []);
    const db = new Database(newer);
    db.prepare('INSERT INTO __drizzle_migrations (hash, created_at) VALUES (?, ?)').run('from-a-later-version', 4_102_444_800_000);
    db.close();
    const n = expectedMigrations();
    const cases: { name: string; args?: string[]; path: string; withoutDacOverride?: boolean; want: string }[] = [
      { name: 'not a database', path: garbage, want: `${garbage} is not a SQLite database: move it away or point MIRROR_DB_PATH elsewhere` },
      { name: 'not a database (migrate)', args: ['migrate', '--db', garbage], path: garbage, want: `${garbage} is not a SQLite database: move it away or point MIRROR_DB_PATH elsewhere` },
      { name: 'a directory', path: directory, want: `${directory} is a directory, not a SQLite file: point MIRROR_DB_PATH at a file (e.g. ${join(directory, 'mirror.db')})` },
      {
        name: 'missing directory on a read-only filesystem',
        path: join(ro, 'sub', 'mirror.db'),
        want: `cannot create the directory ${join(ro, 'sub')} for the mirror ${join(ro, 'sub', 'mirror.db')}: ${ro} is on a read-only filesystem: create it (writable by this user), or point MIRROR_DB_PATH elsewhere`,
      },
      { name: 'a file on a read-only filesystem', path: join(ro, 'mirror.db'), want: `cannot write ${join(ro, 'mirror.db')}: it is on a read-only filesystem: the replica writes it, or point MIRROR_DB_PATH elsewhere` },
      { name: 'permission denied', path: join(dir, 'read-only.db'), withoutDacOverride: true, want: `not writable by this process (uid ${process.getuid?.()}): permission denied` },
      {
        name: 'a newer version',
        path: newer,
        want: `${newer} was written by a newer version of clerk-invitation-mirror: its schema has ${n + 1} migration(s), 1 of which this version (${packageVersion()}, ${n} migrations, up to `,
      },
    ];
    chmodSync(seedMirror(dir, 'read-only.db', []), 0o444);
    const outcomes: Record<string, { code: number | null; lines: string[] }> = {};
    for (const c of cases) outcomes[c.name] = await runToExit(c.args ?? ['start', '--role', 'replica'], env(c.path), { withoutDacOverride: c.withoutDacOverride });
    recordResult('sqlite-ops-startup', Object.fromEntries(Object.entries(outcomes).map(([k, v]) => [k, { code: v.code, line: v.lines[0] }])));
    for (const c of cases) {
      const o = outcomes[c.name]!;
      expect(o.code, c.name).toBe(1);
      expect(o.lines, c.name).toHaveLength(1);
      expect(o.lines[0], c.name).toContain(c.want);
    }
  });

  it('a read-only api role serves from a read-only filesystem: a file at rest, and the file a replica keeps through another mount', { timeout: scale(120_000, 300_000) }, async () => {
    // At rest: no -wal and no -shm next to it, and SQLite cannot create the -shm there.
    const restSource = join(tmp.path, 'rest-source');
    const inv = invitation({ id: 'orginv_rest1', organization_id: 'org_rest' });
    seedMirror(restSource, 'mirror.db', [inv]);
    const rest = join(tmp.path, 'rest-ro');
    mount(rest, ['--bind', '-o', 'ro', restSource]);
    // No REDIS_URL: an api-only process reads its file and nothing else.
    const apiEnv = (path: string) => ({ MIRROR_DB_PATH: path, MIRROR_API_KEY: creds.apiKey }) as unknown as ServiceEnv;
    const atRest = await spawnService(apiEnv(join(rest, 'mirror.db')), { roles: ['api'] });
    cleanups.push(() => atRest.stop());
    const get = async (svc: ServiceProc, org: string, id: string) => {
      const res = await fetch(`${svc.url}/v1/organizations/${org}/invitations/${id}`, { headers: { authorization: `Bearer ${creds.apiKey}` } });
      return { status: res.status, body: await res.text() };
    };
    const restAnswer = await get(atRest, 'org_rest', 'orginv_rest1');
    const restReady = await readyz(atRest);

    // Live: a replica writes the file through a read-write path; the api reads it through a read-only mount.
    const liveSource = join(tmp.path, 'live-source');
    const s = await stack('live', join(liveSource, 'mirror.db'));
    const first = await runLoad(s.sim, { events: 50, ratePerSec: 200, transitionShare: 0 });
    expect((await converged(s, first.touched)).state.missing).toEqual([]);
    const live = join(tmp.path, 'live-ro');
    mount(live, ['--bind', '-o', 'ro', liveSource]);
    const api = await spawnService(apiEnv(join(live, 'mirror.db')), { roles: ['api'] });
    cleanups.push(() => api.stop());
    const later = await runLoad(s.sim, { events: 20, ratePerSec: 100, transitionShare: 0 });
    expect((await converged(s, [...first.touched, ...later.touched])).state.missing).toEqual([]);
    const truth = s.sim.store.truth().filter((t) => later.touched.has(t.id));
    const liveAnswers = await Promise.all(truth.map((t) => get(api, t.organization_id, t.id)));
    const liveReady = await readyz(api);
    recordResult('sqlite-ops-readonly-api', {
      atRest: { status: restAnswer.status, readyz: restReady.status },
      live: { lookups: liveAnswers.length, ok: liveAnswers.filter((a) => a.status === 200).length, readyz: liveReady.status },
    });
    expect(restAnswer.status).toBe(200);
    expect(JSON.parse(restAnswer.body)).toEqual(inv);
    expect(restReady.status).toBe(200);
    expect(atRest.output()).toContain('read-only filesystem');
    expect(liveAnswers.map((a) => a.status)).toEqual(truth.map(() => 200));
    expect(liveAnswers.map((a) => JSON.parse(a.body) as unknown)).toEqual(truth);
    expect(liveReady.status).toBe(200);
  });
});
