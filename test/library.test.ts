import { isClerkAPIResponseError } from '@clerk/backend/errors';
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';
import type { OrganizationInvitation } from '@clerk/backend';
import { createMirror, getOrganizationInvitation, type Mirror } from '../src/index.ts';
import { ReplicaWriter } from '../src/replica/writer.ts';
import { storedStateOf } from '../src/state/codec.ts';
import { openMirrorDb } from '../src/mirror/open.ts';
import { expectedMigrations } from '../src/mirror/migrate.ts';
import { packageVersion } from '../src/bapi/client.ts';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { invitation, tempDir } from './helpers/fixtures.ts';
import { seedMirror } from './helpers/mirror.ts';

const tmp = tempDir();
afterAll(tmp.cleanup);

const ORG = 'org_lib';
const invs = Array.from({ length: 25 }, (_, i) =>
  invitation({
    id: `orginv_${String(i).padStart(3, '0')}`,
    organization_id: ORG,
    email_address: `user${(i * 7) % 25}@example.com`,
    status: (['pending', 'accepted', 'revoked', 'expired'] as const)[i % 4],
    created_at: 1_000 + ((i * 13) % 25),
  }),
);
const path = seedMirror(tmp.path, 'lib.db', [...invs, invitation({ id: 'orginv_other', organization_id: 'org_other' })]);

async function notFound(p: Promise<unknown>) {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isClerkAPIResponseError(err)).toBe(true);
  if (!isClerkAPIResponseError(err)) throw new Error('unreachable');
  expect(err.status).toBe(404);
  expect(err.errors[0]).toMatchObject({ code: 'resource_not_found', message: 'not found', longMessage: 'Resource not found' });
  return err;
}

describe('createMirror().getOrganizationInvitation', () => {
  const mirror: Mirror = createMirror({ path, readonly: true });
  afterAll(() => mirror.close());

  it('returns the SDK shape with raw', async () => {
    const got = await mirror.getOrganizationInvitation({ organizationId: ORG, invitationId: 'orginv_003' });
    expectTypeOf(got).toEqualTypeOf<OrganizationInvitation>();
    expect(got.id).toBe('orginv_003');
    expect(got.emailAddress).toBe(invs[3]!.email_address);
    expect(got.status).toBe('expired');
    expect(got.publicMetadata).toEqual({ team: 'compilers' });
    expect(got.raw).toEqual(invs[3]);
    expect(Object.keys(got)).toEqual([
      'id', 'emailAddress', 'role', 'roleName', 'organizationId', 'createdAt', 'updatedAt', 'expiresAt', 'url', 'status',
      'publicMetadata', 'privateMetadata', 'publicOrganizationData', '_raw',
    ]);
  });

  it('throws the SDK 404 error on a miss, and for an invitation of another organization', async () => {
    await notFound(mirror.getOrganizationInvitation({ organizationId: ORG, invitationId: 'orginv_nope' }));
    await notFound(mirror.getOrganizationInvitation({ organizationId: ORG, invitationId: 'orginv_other' }));
    const err = await notFound(mirror.getOrganizationInvitation({ organizationId: 'org_x', invitationId: 'orginv_001' }));
    expect(err.message).toBe('Not Found');
  });

  it('throws the SDK message for an empty id', async () => {
    await expect(mirror.getOrganizationInvitation({ organizationId: '', invitationId: 'x' })).rejects.toThrow('A valid resource ID is required.');
    await expect(mirror.getOrganizationInvitation({ organizationId: ORG, invitationId: '' })).rejects.toThrow('A valid resource ID is required.');
  });

  it('answers 404 for a tombstone', async () => {
    const p = seedMirror(tmp.path, 'tomb.db', [invitation({ id: 'orginv_t', organization_id: ORG })]);
    const conn = openMirrorDb({ path: p });
    new ReplicaWriter(conn).apply([storedStateOf(invitation({ id: 'orginv_t', organization_id: ORG }), { deleted: true, source: 'reconcile' })]);
    const m = createMirror({ path: p, readonly: true });
    await notFound(m.getOrganizationInvitation({ organizationId: ORG, invitationId: 'orginv_t' }));
    m.close();
    conn.sqlite.close();
  });
});

describe('createMirror().getOrganizationInvitationList', () => {
  const mirror = createMirror({ path, readonly: true });
  afterAll(() => mirror.close());
  const sorted = (key: 'created_at' | 'email_address', dir: 1 | -1) =>
    [...invs].sort((a, b) => (a[key] < b[key] ? -dir : a[key] > b[key] ? dir : a.id < b.id ? -dir : dir)).map((i) => i.id);

  it('defaults to 10 items ordered by -created_at, with the total count', async () => {
    const { data, totalCount } = await mirror.getOrganizationInvitationList({ organizationId: ORG });
    expect(totalCount).toBe(25);
    expect(data.map((i) => i.id)).toEqual(sorted('created_at', -1).slice(0, 10));
    expect(data[0]!.raw).toBeTruthy();
  });

  it('pages with limit and offset, and orders by either field both ways', async () => {
    const page = await mirror.getOrganizationInvitationList({ organizationId: ORG, limit: 7, offset: 14, orderBy: '+email_address' });
    expect(page.data.map((i) => i.id)).toEqual(sorted('email_address', 1).slice(14, 21));
    const asc = await mirror.getOrganizationInvitationList({ organizationId: ORG, limit: 500, orderBy: 'created_at' });
    expect(asc.data.map((i) => i.id)).toEqual(sorted('created_at', 1));
    const desc = await mirror.getOrganizationInvitationList({ organizationId: ORG, limit: 500, orderBy: '-email_address' });
    expect(desc.data.map((i) => i.id)).toEqual(sorted('email_address', -1));
  });

  it('filters by one or several statuses', async () => {
    const one = await mirror.getOrganizationInvitationList({ organizationId: ORG, status: 'pending', limit: 500 });
    expect(one.totalCount).toBe(invs.filter((i) => i.status === 'pending').length);
    expect(one.data.every((i) => i.status === 'pending')).toBe(true);
    const two = await mirror.getOrganizationInvitationList({ organizationId: ORG, status: ['accepted', 'revoked'], limit: 500 });
    expect(new Set(two.data.map((i) => i.status))).toEqual(new Set(['accepted', 'revoked']));
    expect(two.totalCount).toBe(invs.filter((i) => i.status === 'accepted' || i.status === 'revoked').length);
  });

  it("reads a falsy parameter as the SDK does: not sent, so BAPI's default applies", async () => {
    const defaults = await mirror.getOrganizationInvitationList({ organizationId: ORG });
    expect(defaults.data).toHaveLength(10);
    expect(await mirror.getOrganizationInvitationList({ organizationId: ORG, limit: 0, orderBy: '', offset: 0 })).toStrictEqual(defaults);
    expect(await mirror.getOrganizationInvitationList({ organizationId: ORG, limit: Number.NaN })).toStrictEqual(defaults);
  });

  it.each([
    [{ limit: 501 }, 'limit'],
    [{ limit: 2.5 }, 'limit'],
    [{ offset: -1 }, 'offset'],
    [{ orderBy: 'updated_at' }, 'order_by'],
    [{ status: ['pending', 'bogus'] }, 'status'],
  ])('rejects %o with a 422 naming %s', async (params, name) => {
    const err = await mirror.getOrganizationInvitationList({ organizationId: ORG, ...(params as object) }).catch((e: unknown) => e);
    expect(isClerkAPIResponseError(err) && err.status).toBe(422);
    expect(isClerkAPIResponseError(err) && err.errors[0]!.meta?.paramName).toBe(name);
  });

  it('returns an empty page for an unknown organization', async () => {
    expect(await mirror.getOrganizationInvitationList({ organizationId: 'org_none' })).toEqual({ data: [], totalCount: 0 });
  });
});

describe('opening', () => {
  it('refuses a read-only open of a file that does not exist, naming the fix', () => {
    expect(() => createMirror({ path: `${tmp.path}/missing.db`, readonly: true })).toThrow(/clerk-invitation-mirror migrate/);
  });

  it('names the file and what to do when it is not a database, a directory, or written by a newer version', () => {
    const garbage = join(tmp.path, 'garbage.db');
    writeFileSync(garbage, Buffer.alloc(8192, 7));
    const dir = join(tmp.path, 'a-directory');
    mkdirSync(dir);
    const newer = seedMirror(tmp.path, 'newer.db', []);
    const db = new Database(newer);
    db.prepare('INSERT INTO __drizzle_migrations (hash, created_at) VALUES (?, ?)').run('from-a-later-version', 4_102_444_800_000);
    db.close();
    const n = expectedMigrations();
    for (const readonly of [false, true]) {
      expect(() => createMirror({ path: garbage, readonly })).toThrow(`${garbage} is not a SQLite database: move it away or point MIRROR_DB_PATH elsewhere`);
      expect(() => createMirror({ path: dir, readonly })).toThrow(`${dir} is a directory, not a SQLite file: point MIRROR_DB_PATH at a file (e.g. ${join(dir, 'mirror.db')})`);
      expect(() => createMirror({ path: newer, readonly })).toThrow(
        `${newer} was written by a newer version of clerk-invitation-mirror: its schema has ${n + 1} migration(s), 1 of which this version (${packageVersion()}, ${n} migrations, up to `,
      );
    }
    // Refused before anything was applied or changed.
    expect(readFileSync(garbage)).toEqual(Buffer.alloc(8192, 7));
  });

  it('a writable open creates and migrates the file', async () => {
    const m = createMirror({ path: `${tmp.path}/fresh/new.db` });
    expect((await m.getOrganizationInvitationList({ organizationId: ORG })).totalCount).toBe(0);
    m.close();
  });

  it('the ready-made getOrganizationInvitation reads MIRROR_DB_PATH', async () => {
    process.env.MIRROR_DB_PATH = path;
    try {
      const got = await getOrganizationInvitation({ organizationId: ORG, invitationId: 'orginv_010' });
      expect(got.id).toBe('orginv_010');
      await notFound(getOrganizationInvitation({ organizationId: ORG, invitationId: 'orginv_zzz' }));
    } finally {
      delete process.env.MIRROR_DB_PATH;
    }
  });
});
