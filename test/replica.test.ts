import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.ts';
import { MIGRATIONS_FOLDER, migrateMirror } from '../src/mirror/migrate.ts';
import { mirrorOver } from '../src/mirror/mirror.ts';
import { openMirrorDb, type MirrorConnection } from '../src/mirror/open.ts';
import { createReplica } from '../src/replica/create.ts';
import { Replica } from '../src/replica/replica.ts';
import { replicaReadiness, type ReplicaStatus } from '../src/replica/status.ts';
import { isEqualReport, verifyReplica } from '../src/replica/verify.ts';
import type { MirrorKeys } from '../src/state/keys.ts';
import { StatePublisher, type InvitationState } from '../src/state/publisher.ts';
import { SharedState } from '../src/state/shared-state.ts';
import { runCli } from './helpers/child.ts';
import { invitation, tempDir, waitUntil } from './helpers/fixtures.ts';
import { isolatedKeys, testRedis } from './helpers/state.ts';
import { freePort } from '../src/redis/managed.ts';
import { inject } from 'vitest';
import { copyFileSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const tmp = tempDir();
const redis = testRedis();
const closers: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
  await redis.quit();
  tmp.cleanup();
});

const lines: string[] = [];
const log = createLogger({ level: 'debug', destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });

function file(name: string): MirrorConnection {
  const conn = openMirrorDb({ path: join(tmp.path, name) });
  migrateMirror(conn);
  closers.push(() => conn.sqlite.close());
  return conn;
}

function replicaOf(conn: MirrorConnection, keys: MirrorKeys, opts: { blockMs?: number; fileCheckMs?: number } = {}): Replica {
  const r = new Replica({ redis, blocking: testRedis(), conn, keys, log, blockMs: opts.blockMs ?? 200, metaEveryMs: 200, fileCheckMs: opts.fileCheckMs });
  closers.push(() => r.close());
  r.start();
  return r;
}

const present = (id: string, updatedAt: number, extra: Record<string, unknown> = {}): InvitationState => ({
  kind: 'present',
  invitation: invitation({ id, updated_at: updatedAt, ...extra }),
  observedAt: Date.now(),
  source: 'webhook',
});

function rig(name: string, retentionMs = 86_400_000) {
  const keys = isolatedKeys(name);
  const publisher = new StatePublisher({ connection: redis, keys, retentionMs });
  const state = new SharedState(redis, keys);
  const equal = async (conn: MirrorConnection) => isEqualReport(await verifyReplica(conn, state));
  return { keys, publisher, state, equal };
}

async function fill(state: SharedState) {
  const meta = await state.ensure();
  await state.writeRecords(meta.epoch, {}, { filled: true });
}

describe('replica', () => {
  it('loads the snapshot, then follows the stream; tombstones reach it', async () => {
    const { keys, publisher, state, equal } = rig('follow');
    await publisher.publish(Array.from({ length: 300 }, (_, i) => present(`orginv_f${i}`, 1)));
    await fill(state);
    const conn = file('follow.db');
    const r = replicaOf(conn, keys);
    await r.caughtUp;
    expect(await equal(conn)).toBe(true);
    expect((await r.status()).state).toBe('following');

    await publisher.publish([present('orginv_f1', 2, { status: 'accepted' }), { kind: 'gone', id: 'orginv_f2', organizationId: invitation().organization_id, observedAt: Date.now(), source: 'webhook' }]);
    await waitUntil(async () => (await r.status()).entriesBehind === 0 && (await equal(conn)), 'the replica to apply the changes');
    const lookup = mirrorOver(conn);
    expect((await lookup.getOrganizationInvitation({ organizationId: invitation().organization_id, invitationId: 'orginv_f1' })).status).toBe('accepted');
    await expect(lookup.getOrganizationInvitation({ organizationId: invitation().organization_id, invitationId: 'orginv_f2' })).rejects.toMatchObject({ status: 404 });
    expect(await r.status()).toMatchObject({ filled: true, entriesBehind: 0, secondsBehind: 0, bootstraps: 1 });
  });

  it('a restarted replica goes on from its offset, without loading the snapshot again', async () => {
    const { keys, publisher, state, equal } = rig('restart');
    await publisher.publish([present('orginv_r1', 1)]);
    await fill(state);
    const conn = file('restart.db');
    const first = replicaOf(conn, keys);
    await first.caughtUp;
    await first.close();
    await publisher.publish([present('orginv_r1', 2), present('orginv_r2', 1)]);
    const second = replicaOf(conn, keys);
    await second.caughtUp;
    await waitUntil(() => equal(conn), 'the second replica to catch up');
    expect((await second.status()).bootstraps).toBe(0);
  });

  it('reloads the snapshot when the changes after its offset were trimmed away', async () => {
    const { keys, publisher, state, equal } = rig('trimmed', 1);
    await publisher.publish([present('orginv_t0', 1)]);
    await fill(state);
    const conn = file('trimmed.db');
    const r = replicaOf(conn, keys);
    await r.caughtUp;
    await r.close();
    // Offline while hundreds of changes come and go (retention 1 ms).
    for (let i = 0; i < 300; i++) {
      await publisher.publish([present(`orginv_t${i}`, 1)]);
      if (i % 50 === 0) await new Promise((res) => setTimeout(res, 3));
    }
    const again = replicaOf(conn, keys);
    await waitUntil(() => equal(conn), 'the replica to reload');
    expect((await again.status()).bootstraps).toBe(1);
    expect(lines.join('')).toMatch(/missed changes the stream no longer holds/);
  });

  it('notices a trimmed offset even when no change came since', async () => {
    const { keys, publisher, state, equal } = rig('trimmed-quiet');
    await publisher.publish([present('orginv_q0', 1)]);
    await fill(state);
    const conn = file('trimmed-quiet.db');
    const r = replicaOf(conn, keys);
    await r.caughtUp;
    await r.close();
    await publisher.publish([present('orginv_q1', 1)]);
    // Every entry is gone, the last one included: there is nothing after the offset to read.
    await redis.xtrim(keys.changes, 'MAXLEN', 0);
    const again = replicaOf(conn, keys);
    await waitUntil(() => equal(conn), 'the replica to reload');
    expect((await again.status()).bootstraps).toBe(1);
  });

  it('Redis lost the state: keeps serving, reports stale, applies new changes, and converges once refilled, deletions included', async () => {
    const { keys, publisher, state, equal } = rig('flush');
    await publisher.publish([present('orginv_l1', 1), present('orginv_l2', 1), present('orginv_l3', 1)]);
    await fill(state);
    const conn = file('flush.db');
    const r = replicaOf(conn, keys);
    await r.caughtUp;
    const lookup = mirrorOver(conn);
    const org = invitation().organization_id;

    await redis.del(keys.meta, keys.snapshot, keys.changes, keys.records);
    await waitUntil(async () => (await r.status()).state === 'stale', 'the replica to report stale');
    // Still serving every row it had.
    expect((await lookup.getOrganizationInvitation({ organizationId: org, invitationId: 'orginv_l3' })).id).toBe('orginv_l3');
    // A change in the new state reaches it meanwhile.
    await publisher.publish([present('orginv_l1', 2, { status: 'revoked' })]);
    await waitUntil(async () => (await lookup.getOrganizationInvitation({ organizationId: org, invitationId: 'orginv_l1' })).status === 'revoked', 'the new change');
    expect((await r.status()).state).toBe('stale');

    // A backfill refills the state: orginv_l3 no longer exists in Clerk.
    await publisher.publish([present('orginv_l2', 1)]);
    await fill(state);
    await waitUntil(async () => (await r.status()).state === 'following', 'the replica to follow again');
    expect(await equal(conn)).toBe(true);
    await expect(lookup.getOrganizationInvitation({ organizationId: org, invitationId: 'orginv_l3' })).rejects.toMatchObject({ status: 404 });
    expect((await lookup.getOrganizationInvitation({ organizationId: org, invitationId: 'orginv_l2' })).id).toBe('orginv_l2');
  });

  it('a file from before replicas (rows, no position) keeps its rows until the state is filled', async () => {
    const { keys, publisher, state, equal } = rig('legacy');
    const conn = file('legacy.db');
    // What the previous version left: rows written by its worker.
    const old = rig('legacy-seed');
    await old.publisher.publish([present('orginv_old1', 1), present('orginv_old2', 1)]);
    await fill(old.state);
    const seeder = replicaOf(conn, old.keys);
    await seeder.caughtUp;
    await seeder.close();
    conn.sqlite.exec('DELETE FROM replica_position');

    const r = replicaOf(conn, keys);
    await r.caughtUp;
    expect((await r.status()).state).toBe('stale');
    expect(conn.sqlite.prepare('SELECT count(*) FROM organization_invitations').pluck().get()).toBe(2);
    await publisher.publish([present('orginv_old1', 1)]);
    await fill(state);
    await waitUntil(async () => (await r.status()).state === 'following' && (await equal(conn)), 'the replica to converge');
    expect(conn.sqlite.prepare('SELECT id FROM organization_invitations').pluck().all()).toEqual(['orginv_old1']);
  });

  it('refuses to share its file with another replica', async () => {
    const { keys, publisher, state } = rig('two-writers');
    await publisher.publish([present('orginv_w1', 1)]);
    await fill(state);
    const a = file('shared.db');
    const b = openMirrorDb({ path: join(tmp.path, 'shared.db') });
    closers.push(() => b.sqlite.close());
    const ra = replicaOf(a, keys);
    await ra.caughtUp;
    const rb = replicaOf(b, keys);
    await rb.caughtUp;
    await publisher.publish([present('orginv_w1', 2)]);
    await waitUntil(async () => [(await ra.status()).reason, (await rb.status()).reason].some((x) => /another replica is writing/.test(x ?? '')), 'one of them to notice the other');
  });
});

describe('the file under a replica', () => {
  const onDisk = async (path: string, state: SharedState) => {
    const c = openMirrorDb({ path, readonly: true, watchMs: 0 });
    try {
      return isEqualReport(await verifyReplica(c, state));
    } finally {
      c.close();
    }
  };

  it('replaced by a backup (rename): reopens it and catches up from its position; deleted: recreates it and loads the snapshot', async () => {
    const { keys, publisher, state, equal } = rig('reopen');
    await publisher.publish(Array.from({ length: 40 }, (_, i) => present(`orginv_re${i}`, 1)));
    await fill(state);
    const conn = file('reopen.db');
    const r = replicaOf(conn, keys, { fileCheckMs: 100 });
    await r.caughtUp;
    const lookup = mirrorOver(conn);
    const backup = join(tmp.path, 'reopen-backup.db');
    conn.sqlite.exec(`VACUUM INTO '${backup}'`);
    await publisher.publish(Array.from({ length: 20 }, (_, i) => present(`orginv_re${i}`, 2, { status: 'accepted' })));
    await waitUntil(() => equal(conn), 'the replica to apply the changes after the backup');

    renameSync(backup, conn.path);
    // The rows after the backup come back from the stream, into the file now at the path.
    await waitUntil(async () => (await r.status()).reopens === 1 && (await onDisk(conn.path, state)), 'the replica to reopen the restored file and catch up');
    expect((await r.status()).bootstraps).toBe(1);
    expect((await lookup.getOrganizationInvitation({ organizationId: invitation().organization_id, invitationId: 'orginv_re3' })).status).toBe('accepted');
    expect(lines.join('')).toMatch(/reopen\.db was replaced while the replica had it open/);

    await publisher.publish([present('orginv_re_after', 1)]);
    await waitUntil(() => onDisk(conn.path, state), 'a change after the reopen to reach the file on disk');

    unlinkSync(conn.path);
    await waitUntil(async () => (await r.status()).reopens === 2 && (await onDisk(conn.path, state)), 'the replica to recreate the file and load the snapshot');
    expect(await r.status()).toMatchObject({ state: 'following', bootstraps: 2 });
    expect((await lookup.getOrganizationInvitation({ organizationId: invitation().organization_id, invitationId: 'orginv_re_after' })).id).toBe('orginv_re_after');
    expect(lines.join('')).toMatch(/reopen\.db was deleted while the replica had it open/);
  });

  it('a write that fails (disk full: max_page_count) is retried, reported naming the file, and never skipped', async () => {
    const { keys, publisher, state, equal } = rig('disk-full');
    await publisher.publish([present('orginv_df0', 1)]);
    await fill(state);
    const conn = file('disk-full.db');
    const r = replicaOf(conn, keys);
    await r.caughtUp;
    const before = (await r.status()).seq!;
    const pages = conn.sqlite.pragma('page_count', { simple: true }) as number;
    conn.sqlite.pragma(`max_page_count = ${pages}`);
    const big = 'x'.repeat(3000);
    await publisher.publish(Array.from({ length: 50 }, (_, i) => present(`orginv_df${i + 1}`, 1, { public_metadata: { big } })));
    await waitUntil(async () => (await r.status()).writeFailures >= 2, 'the write to fail and be tried again');
    const failing = await r.status();
    expect(failing.state).toBe('stale');
    expect(failing.reason).toContain(`cannot write ${conn.path}`);
    expect(failing.reason).toMatch(/SQLITE_FULL.*the disk is full/);
    expect(replicaReadiness(failing, 30)).toContain(conn.path);
    // Not one change of the failed batch is in the file, and the position has not moved.
    expect(failing.seq).toBe(before);
    expect(conn.sqlite.prepare("SELECT count(*) FROM organization_invitations WHERE id LIKE 'orginv_df%'").pluck().get()).toBe(1);
    // Logged, but not once per try.
    const logged = lines.filter((l) => l.includes('replica cannot write its file') && l.includes('disk-full.db'));
    expect(logged.length).toBeGreaterThan(0);
    expect(logged.length).toBeLessThan(failing.writeFailures);

    conn.sqlite.pragma('max_page_count = 1073741823');
    await waitUntil(async () => (await r.status()).state === 'following' && (await equal(conn)), 'the replica to catch up once the disk has room');
    expect(lines.join('')).toMatch(/replica writes its file again/);
  });

  it('a write lock held by another process: each try waits only briefly, the event loop keeps turning, and the replica catches up after', async () => {
    const { keys, publisher, state, equal } = rig('locked');
    await publisher.publish([present('orginv_lk0', 1)]);
    await fill(state);
    const conn = file('locked.db');
    const r = replicaOf(conn, keys);
    await r.caughtUp;
    const holder = spawn(
      process.execPath,
      ['-e', `const db = new (require('better-sqlite3'))(process.argv[1]); db.exec('BEGIN IMMEDIATE'); console.log('locked'); setTimeout(() => { db.exec('COMMIT'); console.log('released'); }, 2000);`, conn.path],
      { cwd: join(import.meta.dirname, '..'), stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    holder.stdout.on('data', (d: Buffer) => (out += d));
    const exited = new Promise((resolve) => holder.on('exit', resolve));
    await waitUntil(() => out.includes('locked'), 'the other process to take the write lock');
    // The longest the event loop stood still while the lock was held.
    let last = performance.now();
    let longest = 0;
    const tick = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
    }, 10);
    await publisher.publish([present('orginv_lk1', 1)]);
    await waitUntil(async () => /SQLITE_BUSY/.test((await r.status()).reason ?? '') || out.includes('released'), 'the replica to meet the lock');
    const busy = await r.status();
    await exited;
    clearInterval(tick);
    expect(out).toContain('released');
    expect(busy.state).toBe('stale');
    expect(busy.reason).toMatch(/SQLITE_BUSY.*another process holds its write lock/);
    expect(longest).toBeLessThan(1000);
    await waitUntil(async () => (await r.status()).state === 'following' && (await equal(conn)), 'the replica to catch up once the lock is released');
  });
});

describe('organizations in a replica', () => {
  const organization = (id: string, gone = false) => ({ kind: 'organization', id, gone, observedAt: Date.now(), source: 'backfill' }) as const;
  const listOf = (conn: MirrorConnection, organizationId: string) => mirrorOver(conn).getOrganizationInvitationList({ organizationId }).then(
    (r) => r.totalCount,
    (e: { status: number; errors: { longMessage: string }[] }) => `${e.status} ${e.errors[0]!.longMessage}`,
  );
  const org = invitation().organization_id;

  it('loads and follows them; unknown ones answer 404 only once the file has every one of a complete listing', async () => {
    const { keys, publisher, state, equal } = rig('orgs');
    await publisher.publish([present('orginv_o1', 1), organization(org), organization('org_2alsoExists0000000000000000')]);
    await fill(state);
    const conn = file('orgs.db');
    const r = replicaOf(conn, keys);
    await r.caughtUp;
    expect(await equal(conn)).toBe(true);
    // No listing has ended yet: what the mirror does not know may exist.
    expect(await listOf(conn, 'org_2unknown00000000000000000')).toBe(0);

    // A listing that publishes no change of its own (every organization known already).
    await publisher.publish([organization(org)], { organizationsListed: true });
    await waitUntil(async () => (await listOf(conn, 'org_2unknown00000000000000000')) !== 0, 'the replica to note the complete listing');
    expect(await listOf(conn, 'org_2unknown00000000000000000')).toBe('404 Given organization not found.');
    expect(await listOf(conn, 'org_2alsoExists0000000000000000')).toBe(0);
    expect(await listOf(conn, org)).toBe(1);

    // Gone in Clerk, as a change in the stream; and a fresh replica loads all of it from the snapshot.
    await publisher.publish([organization('org_2alsoExists0000000000000000', true)]);
    await waitUntil(async () => (await listOf(conn, 'org_2alsoExists0000000000000000')) !== 0, 'the replica to apply the tombstone');
    expect(await listOf(conn, 'org_2alsoExists0000000000000000')).toBe('404 Given organization not found.');
    expect(await equal(conn)).toBe(true);
    const fresh = file('orgs-fresh.db');
    await replicaOf(fresh, keys).caughtUp;
    expect(await equal(fresh)).toBe(true);
    expect(await listOf(fresh, 'org_2unknown00000000000000000')).toBe('404 Given organization not found.');
    expect(await listOf(fresh, 'org_2alsoExists0000000000000000')).toBe('404 Given organization not found.');
    expect(await listOf(fresh, org)).toBe(1);
  });

  it('a file that followed the stream before organizations were kept loads the snapshot once, and never answers 404 for an organization it lacks', async () => {
    const { keys, publisher, state, equal } = rig('orgs-upgrade');
    await publisher.publish([present('orginv_u1', 1), organization(org), organization('org_2emptyButReal00000000000000')], { organizationsListed: true });
    await fill(state);
    // The file as the version before left it: migrations up to 0002, followed to the end of
    // the stream, the organizations' states stored as invitation rows without JSON.
    const path = join(tmp.path, 'orgs-upgrade.db');
    const folder = join(tmp.path, 'migrations-0002');
    mkdirSync(join(folder, 'meta'), { recursive: true });
    const journal = JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, 'meta/_journal.json'), 'utf8')) as { entries: { tag: string }[] };
    const old = journal.entries.filter((e) => !e.tag.startsWith('0003'));
    for (const e of old) copyFileSync(join(MIGRATIONS_FOLDER, `${e.tag}.sql`), join(folder, `${e.tag}.sql`));
    writeFileSync(join(folder, 'meta/_journal.json'), JSON.stringify({ ...journal, entries: old }));
    const before = new Database(path);
    migrate(drizzle(before), { migrationsFolder: folder });
    const meta = (await state.meta())!;
    before.prepare("INSERT INTO replica_position (id, epoch, stream_id, seq, carries_older_state, updated_at) VALUES (1, ?, ?, ?, 0, 0)").run(meta.epoch, meta.last, meta.seq);
    before.prepare("INSERT INTO organization_invitations (id, organization_id, updated_at, confirmed_at, source) VALUES ('org_2emptyButReal00000000000000', 'org_2emptyButReal00000000000000', 0, 1, 'backfill')").run();
    before.close();

    const conn = file('orgs-upgrade.db');
    const r = replicaOf(conn, keys);
    await r.caughtUp;
    expect(await equal(conn)).toBe(true);
    expect((await r.status()).bootstraps).toBe(1);
    expect(await listOf(conn, 'org_2emptyButReal00000000000000')).toBe(0);
    expect(await listOf(conn, 'org_2unknown00000000000000000')).toBe('404 Given organization not found.');
  });

  it('verify tells an organization the file lacks or holds in another state', async () => {
    const { keys, publisher, state } = rig('orgs-verify');
    await publisher.publish([organization('org_2verified000000000000000000')]);
    await fill(state);
    const conn = file('orgs-verify.db');
    const r = replicaOf(conn, keys);
    await r.caughtUp;
    await r.close();
    await publisher.publish([organization('org_2verified000000000000000000', true), organization('org_2newOne00000000000000000000')]);
    const report = await verifyReplica(conn, state);
    expect(report.different).toEqual(['org_2verified000000000000000000']);
    expect(report.missing).toEqual(['org_2newOne00000000000000000000']);
  });
});

describe('memory of a replica', () => {
  it('keeps nothing of the changes it applied (its waits must not pile up on a promise that lives until close)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const { keys, publisher, state } = rig('memory');
    await fill(state);
    const conn = file('memory.db');
    const r = replicaOf(conn, keys);
    await r.caughtUp;
    const big = { public_metadata: { note: 'x'.repeat(2000) } };
    const publishN = async (from: number, n: number) => {
      for (let i = from; i < from + n; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => publisher.publish([present(`orginv_mem${i + j}`, 1, big)])));
      await waitUntil(async () => (await r.status()).entriesBehind === 0, 'the replica to apply them');
    };
    const used = () => {
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.external;
    };
    await publishN(0, 2000);
    const before = used();
    await publishN(2000, 8000);
    // 8,000 changes of about 3 KB each: keeping them would add about 24 MB.
    expect((used() - before) / 1e6).toBeLessThan(8);
  });
});

describe('readiness of a replica', () => {
  const ok: ReplicaStatus = { state: 'following', reason: undefined, epoch: 'e', offset: '1-0', seq: 1, filled: true, entriesBehind: 0, secondsBehind: 0, applied: 1, bootstraps: 1, writeFailures: 0, reopens: 0 };
  it('is ready only when following a filled state within the lag allowed, and says why not', () => {
    expect(replicaReadiness(ok, 30)).toBe(true);
    expect(replicaReadiness({ ...ok, state: 'bootstrapping' }, 30)).toMatch(/loading the snapshot/);
    expect(replicaReadiness({ ...ok, state: 'stale', reason: 'Redis lost the shared state' }, 30)).toBe('Redis lost the shared state');
    expect(replicaReadiness({ ...ok, filled: false }, 30)).toMatch(/not been filled by a backfill/);
    expect(replicaReadiness({ ...ok, secondsBehind: 31, entriesBehind: 7 }, 30)).toMatch(/31\.0 s behind the shared state \(7 changes\)/);
  });
});

describe('createReplica', () => {
  it('resolves once caught up and answers lookups from its own copy', async () => {
    const { keys, publisher, state } = rig('library');
    await publisher.publish([present('orginv_lib1', 1)]);
    await fill(state);
    const m = await createReplica({ redisUrl: inject('redisUrl'), keyPrefix: keys.prefix, path: ':memory:', logger: log });
    closers.push(() => m.close());
    expect((await m.getOrganizationInvitation({ organizationId: invitation().organization_id, invitationId: 'orginv_lib1' })).id).toBe('orginv_lib1');
    expect(await m.status()).toMatchObject({ state: 'following', filled: true, entriesBehind: 0 });
  });

  it('rejects, naming the file and Redis without credentials, when it cannot catch up in time', async () => {
    const port = await freePort();
    const started = Date.now();
    const err = await createReplica({ redisUrl: `redis://user:hunter2@127.0.0.1:${port}`, path: ':memory:', timeoutMs: 500, logger: log }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(new RegExp(`did not catch up with the shared state at redis://127\\.0\\.0\\.1:${port} within 500 ms`));
    expect((err as Error).message).not.toContain('hunter2');
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('verify', () => {
  it('exits 0 for a replica equal to the shared state and 1 listing each difference otherwise', async () => {
    const { keys, publisher, state, equal } = rig('verify');
    await publisher.publish([present('orginv_v1', 1), present('orginv_v2', 1), present('orginv_v3', 1)]);
    await fill(state);
    const conn = file('verify.db');
    const r = replicaOf(conn, keys);
    await waitUntil(() => equal(conn), 'the replica');
    await r.close();
    conn.sqlite.pragma('wal_checkpoint(TRUNCATE)');
    const env = { REDIS_URL: inject('redisUrl'), REDIS_KEY_PREFIX: keys.prefix };
    const same = await runCli(['verify', '--db', conn.path, '--recheck-ms', '0'], env);
    expect(same.code, same.output).toBe(0);
    expect(same.output).toMatch(/equal: the file holds exactly the shared state/);

    const copy = join(tmp.path, 'verify-broken.db');
    copyFileSync(conn.path, copy);
    const broken = openMirrorDb({ path: copy });
    broken.sqlite.prepare("UPDATE organization_invitations SET raw = '{}' WHERE id = 'orginv_v1'").run();
    broken.sqlite.prepare("DELETE FROM organization_invitations WHERE id = 'orginv_v2'").run();
    broken.sqlite.close();
    const diff = await runCli(['verify', '--db', copy, '--recheck-ms', '0', '--json'], env);
    expect(diff.code).toBe(1);
    expect(JSON.parse(diff.output.trim().split('\n').at(-1)!)).toMatchObject({ missing: ['orginv_v2'], extra: [], different: ['orginv_v1'], stateSize: 3, fileRows: 2 });
  });
});
