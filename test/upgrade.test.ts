import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { afterAll, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { MIGRATIONS_FOLDER } from '../src/mirror/migrate.ts';
import { startService } from '../src/service.ts';
import { startSimulator } from '../src/simulator/index.ts';
import { tempDir, waitUntil } from './helpers/fixtures.ts';
import { SECRET_KEY, SIGNING_SECRET } from './helpers/pipeline.ts';
import { redisSpace } from './helpers/state.ts';

const tmp = tempDir();
const upgradeRedis = redisSpace('upgrade');
afterAll(async () => {
  await upgradeRedis.clear();
  tmp.cleanup();
});

/** A mirror file as the version before replicas left it: its two migrations, rows its worker wrote, a backfill record. */
function previousVersionFile(path: string, rows: { id: string; organization_id: string; updated_at: number; raw: string; deleted: boolean }[]) {
  const folder = join(tmp.path, 'old-migrations');
  mkdirSync(join(folder, 'meta'), { recursive: true });
  for (const f of ['0000_init.sql', '0001_sync_state.sql']) cpSync(join(MIGRATIONS_FOLDER, f), join(folder, f));
  const journal = JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, 'meta/_journal.json'), 'utf8')) as { entries: { tag: string }[] };
  writeFileSync(join(folder, 'meta/_journal.json'), JSON.stringify({ ...journal, entries: journal.entries.filter((e) => e.tag.startsWith('0000') || e.tag.startsWith('0001')) }));
  const sqlite = new Database(path);
  migrate(drizzle(sqlite), { migrationsFolder: folder });
  const insert = sqlite.prepare(
    `INSERT INTO organization_invitations (id, organization_id, email_address, status, expires_at, created_at, updated_at, confirmed_at, source, deleted_at, raw)
     VALUES (@id, @organization_id, NULL, NULL, NULL, NULL, @updated_at, 1, 'webhook', @deleted_at, @raw)`,
  );
  for (const r of rows) insert.run({ ...r, deleted_at: r.deleted ? 1 : null });
  sqlite.prepare("INSERT INTO sync_state (key, value, updated_at) VALUES ('backfill.last', '{}', 1)").run();
  sqlite.close();
}

it('upgrading a single-host install needs no step and loses nothing: the file keeps serving, then converges to Clerk', async () => {
  const sim = await startSimulator({ secretKey: SECRET_KEY, signingSecret: SIGNING_SECRET, rateLimit: 0 });
  const { organizationIds } = sim.store.seed({ organizations: 3, invitationsPerOrganization: 10 });
  const truth = sim.store.truth();
  // What the old mirror held: everything, one invitation older than Clerk now, and one whose organization Clerk deleted since.
  const changed = truth.find((t) => t.status === 'pending')!;
  const before = { ...changed };
  sim.store.acceptInvitation(changed.id);
  const path = join(tmp.path, 'data/mirror.db');
  mkdirSync(join(tmp.path, 'data'), { recursive: true });
  previousVersionFile(
    path,
    truth.map((t) => ({ id: t.id, organization_id: t.organization_id, updated_at: t.updated_at, raw: JSON.stringify(t.id === changed.id ? before : t), deleted: false })),
  );
  const deletedOrg = organizationIds[2]!;
  const deletedIds = truth.filter((t) => t.organization_id === deletedOrg).map((t) => t.id);
  sim.store.deleteOrganization(deletedOrg, { webhook: false });

  const config = loadConfig({
    CLERK_SECRET_KEY: SECRET_KEY,
    CLERK_WEBHOOK_SIGNING_SECRET: SIGNING_SECRET,
    CLERK_API_URL: sim.url,
    ...upgradeRedis.env,
    MIRROR_DB_PATH: path,
    MIRROR_API_KEY: 'upgrade-test-api-key-0123456789',
    PORT: '0',
  });
  const service = await startService({ config, log: createLogger({ level: 'silent' }), fillCheckMs: 200 });
  try {
    await waitUntil(async () => (await fetch(`${service.url}/readyz`)).status === 200, 'the upgraded mirror to be ready');
    const db = service.mirror!.sqlite;
    const live = db.prepare('SELECT id, raw FROM organization_invitations WHERE deleted_at IS NULL').all() as { id: string; raw: string }[];
    const now = sim.store.truth();
    expect(live.map((r) => r.id).sort()).toEqual(now.map((t) => t.id).sort());
    for (const r of live) expect(JSON.parse(r.raw)).toStrictEqual(now.find((t) => t.id === r.id));
    expect(db.prepare('SELECT count(*) FROM organization_invitations WHERE id IN (SELECT value FROM json_each(?))').pluck().get(JSON.stringify(deletedIds))).toBe(0);
    // The old records table is gone; the file now records where it stands in the shared state.
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'sync_state'").get()).toBeUndefined();
    expect(db.prepare('SELECT carries_older_state FROM replica_position').pluck().get()).toBe(0);
    // Read through the read API as before.
    const res = await fetch(`${service.url}/v1/organizations/${changed.organization_id}/invitations/${changed.id}`, { headers: { authorization: 'Bearer upgrade-test-api-key-0123456789' } });
    expect(((await res.json()) as { status: string }).status).toBe('accepted');
  } finally {
    await service.stop();
    await sim.close();
  }
});
