import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { migrateMirror } from '../src/mirror/migrate.ts';
import { openMirrorDb, type MirrorConnection } from '../src/mirror/open.ts';
import { MirrorWriter, type InvitationWrite } from '../src/mirror/upsert.ts';
import { invitation, tempDir } from './helpers/fixtures.ts';

const tmp = tempDir();
afterAll(tmp.cleanup);

let n = 0;
let conn: MirrorConnection;
let writer: MirrorWriter;
beforeEach(() => {
  conn = openMirrorDb({ path: join(tmp.path, `m${n++}.db`) });
  migrateMirror(conn);
  writer = new MirrorWriter(conn);
  return () => conn.sqlite.close();
});

const ID = 'orginv_1';
const ORG = 'org_1';
const present = (updatedAt: number, observedAt: number, extra: Record<string, unknown> = {}): InvitationWrite => ({
  kind: 'present',
  invitation: invitation({ id: ID, organization_id: ORG, updated_at: updatedAt, ...extra }),
  observedAt,
  source: 'webhook',
});
const gone = (observedAt: number, knownUpdatedAt?: number): InvitationWrite => ({
  kind: 'gone',
  id: ID,
  organizationId: ORG,
  knownUpdatedAt,
  observedAt,
  source: 'webhook',
});
const row = () =>
  conn.sqlite.prepare('SELECT * FROM organization_invitations WHERE id = ?').get(ID) as Record<string, unknown>;

describe('MirrorWriter', () => {
  it('inserts, then only moves forward in updated_at', () => {
    expect(writer.write(present(100, 1000, { status: 'pending' }))).toBe('inserted');
    expect(writer.write(present(300, 1001, { status: 'revoked' }))).toBe('updated');
    expect(writer.write(present(200, 1002, { status: 'accepted' }))).toBe('stale');
    expect(row()).toMatchObject({ updated_at: 300, status: 'revoked', confirmed_at: 1001 });
    expect(JSON.parse(row().raw as string).status).toBe('revoked');
  });

  it('at an equal updated_at only refreshes the confirmation time, and never moves it back', () => {
    writer.write(present(100, 1000, { status: 'pending' }));
    expect(writer.write(present(100, 5000, { status: 'pending', role: 'org:admin' }))).toBe('unchanged');
    expect(row()).toMatchObject({ confirmed_at: 5000 });
    expect(JSON.parse(row().raw as string).role).toBe('org:member');
    writer.write(present(100, 2000));
    expect(row()).toMatchObject({ confirmed_at: 5000 });
  });

  it('keeps the raw text exactly as received', () => {
    const raw = '{ "object":"organization_invitation","id":"orginv_1" ,"organization_id":"org_1","email_address":"a@b.c","created_at":1,"updated_at":2,"future_field":{"x":[1,2.50]}}';
    writer.write({ kind: 'present', invitation: JSON.parse(raw), raw, observedAt: 1, source: 'backfill' });
    expect(row().raw).toBe(raw);
    expect(row().source).toBe('backfill');
  });

  it('indexes the columns it copies from the JSON', () => {
    writer.write(present(100, 1000, { email_address: 'x@y.z', status: 'pending', expires_at: 777, created_at: 50 }));
    expect(row()).toMatchObject({ organization_id: ORG, email_address: 'x@y.z', status: 'pending', expires_at: 777, created_at: 50, deleted_at: null });
  });

  it('tombstones at the newest known version, and an older state cannot resurrect it', () => {
    writer.write(present(100, 1000));
    expect(writer.write(gone(2000, 150))).toBe('updated');
    expect(row()).toMatchObject({ updated_at: 150, deleted_at: 2000 });
    // A backfill page fetched before the 404 arrives late with the version the 404 superseded.
    expect(writer.write(present(150, 1500))).toBe('stale');
    expect(writer.write(present(120, 3000))).toBe('stale');
    expect(row().deleted_at).toBe(2000);
    // Last known JSON is kept for inspection, but the row is gone for lookups.
    expect(JSON.parse(row().raw as string).updated_at).toBe(100);
  });

  it('revives a tombstone with a newer state, or the same version observed after the 404', () => {
    writer.write(present(100, 1000));
    writer.write(gone(2000));
    expect(row()).toMatchObject({ updated_at: 100, deleted_at: 2000 });
    expect(writer.write(present(100, 3000))).toBe('updated');
    expect(row()).toMatchObject({ deleted_at: null, confirmed_at: 3000 });
    writer.write(gone(4000));
    expect(writer.write(present(101, 3500))).toBe('updated');
    expect(row().deleted_at).toBeNull();
  });

  it('a late tombstone does not hide a state confirmed after it', () => {
    writer.write(present(100, 5000));
    expect(writer.write(gone(4000))).toBe('stale');
    expect(row().deleted_at).toBeNull();
  });

  it('records a tombstone for an invitation never seen', () => {
    expect(writer.write(gone(2000))).toBe('inserted');
    expect(row()).toMatchObject({ organization_id: ORG, raw: null, deleted_at: 2000, updated_at: 0 });
    expect(writer.write(present(1, 2500))).toBe('updated');
  });

  it('converges to the newest state whatever the order of writes', () => {
    const versions = Array.from({ length: 30 }, (_, i) => present(1000 + i * 10, 10_000 + i, { status: i % 2 ? 'pending' : 'accepted' }));
    for (let round = 0; round < 20; round++) {
      const c = openMirrorDb({ path: join(tmp.path, `order-${round}.db`) });
      migrateMirror(c);
      const w = new MirrorWriter(c);
      const shuffled = [...versions].sort(() => Math.random() - 0.5);
      for (const v of shuffled) w.write(v);
      const r = c.sqlite.prepare('SELECT updated_at, raw FROM organization_invitations').get() as { updated_at: number; raw: string };
      expect(r.updated_at).toBe(1290);
      expect(JSON.parse(r.raw).updated_at).toBe(1290);
      c.sqlite.close();
    }
  });

  it('writes a batch all or nothing', () => {
    const ok = present(100, 1);
    const broken = { kind: 'present', invitation: { ...invitation({ id: 'orginv_2' }), organization_id: null }, observedAt: 1, source: 'backfill' } as unknown as InvitationWrite;
    expect(() => writer.writeMany([ok, broken])).toThrow(/NOT NULL/);
    expect(row()).toBeUndefined();
    expect(writer.writeMany([ok, present(50, 2), present(200, 3)])).toEqual(['inserted', 'stale', 'updated']);
  });

  it('refuses to write through a read-only connection', () => {
    writer.write(present(1, 1));
    const ro = openMirrorDb({ path: conn.path, readonly: true });
    expect(() => new MirrorWriter(ro).write(present(2, 2))).toThrow(/read-only/);
    ro.sqlite.close();
  });
});

describe('concurrent writers in separate processes', () => {
  it('end at the newest version with no lost or torn write', async () => {
    const path = conn.path;
    const script = join(import.meta.dirname, 'helpers/write-versions.ts');
    const run = (versions: number[]) =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', script, path, JSON.stringify(versions)], { cwd: join(import.meta.dirname, '..') });
    const all = Array.from({ length: 400 }, (_, i) => i + 1);
    const evens = all.filter((v) => v % 2 === 0).reverse();
    const odds = all.filter((v) => v % 2 === 1);
    const results = await Promise.all([run(evens), run(odds), run([...all].sort(() => Math.random() - 0.5))]);
    for (const r of results) expect(r.stderr).toBe('');
    const rows = conn.sqlite.prepare('SELECT id, updated_at, raw FROM organization_invitations ORDER BY id').all() as { id: string; updated_at: number; raw: string }[];
    expect(rows).toHaveLength(5);
    for (const r of rows) {
      expect(r.updated_at).toBe(400);
      expect(JSON.parse(r.raw).updated_at).toBe(400);
    }
  });
});
