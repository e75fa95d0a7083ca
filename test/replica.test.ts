import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.ts';
import { migrateMirror } from '../src/mirror/migrate.ts';
import { mirrorOver } from '../src/mirror/mirror.ts';
import { openMirrorDb, type MirrorConnection } from '../src/mirror/open.ts';
import { Replica } from '../src/replica/replica.ts';
import { isEqualReport, verifyReplica } from '../src/replica/verify.ts';
import type { MirrorKeys } from '../src/state/keys.ts';
import { StatePublisher, type InvitationState } from '../src/state/publisher.ts';
import { SharedState } from '../src/state/shared-state.ts';
import { invitation, tempDir, waitUntil } from './helpers/fixtures.ts';
import { isolatedKeys, testRedis } from './helpers/state.ts';

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

function replicaOf(conn: MirrorConnection, keys: MirrorKeys, opts: { blockMs?: number } = {}): Replica {
  const r = new Replica({ redis, blocking: testRedis(), conn, keys, log, blockMs: opts.blockMs ?? 200, metaEveryMs: 200 });
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
