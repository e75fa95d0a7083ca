import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type Database from 'better-sqlite3';
import { packageVersion } from '../bapi/client.ts';

/** `migrations/` at the package root, from both `src/mirror/` and `dist/mirror/`. */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../migrations', import.meta.url));

interface JournalEntry {
  idx: number;
  /** drizzle-kit's timestamp of the migration; drizzle records it as `created_at`. */
  when: number;
  tag: string;
}

let shipped: JournalEntry[] | undefined;

/** The migrations this version ships, in order (migrations/meta/_journal.json). */
export function shippedMigrations(): readonly JournalEntry[] {
  shipped ??= (JSON.parse(readFileSync(`${MIGRATIONS_FOLDER}/meta/_journal.json`, 'utf8')) as { entries: JournalEntry[] }).entries;
  return shipped;
}

/**
 * The `created_at` of every migration recorded in the file, oldest first; empty when never
 * migrated. Plain SQL on purpose: `sqlite_master` is SQLite's catalogue and
 * `__drizzle_migrations` is drizzle's migrator's own table (it creates and shapes it), so a
 * table definition for either here would be a second copy of a schema this project does not
 * own, and one drizzle-kit must never see.
 */
export function appliedMigrations(sqlite: Database.Database): number[] {
  const table = sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '__drizzle_migrations'").get();
  if (!table) return [];
  return (sqlite.prepare('SELECT created_at FROM __drizzle_migrations ORDER BY created_at').pluck().all() as (number | string)[]).map(Number);
}

/** The file's schema comes from a newer version of the project: this one must not read or write it. */
export class NewerSchemaError extends Error {
  override name = 'NewerSchemaError';
  constructor(
    readonly path: string,
    readonly applied: number,
    readonly unknown: number,
  ) {
    const known = shippedMigrations();
    super(
      `${path} was written by a newer version of clerk-invitation-mirror: its schema has ${applied} migration(s), ${unknown} of which this version (${packageVersion()}, ${known.length} migrations, up to ${known.at(-1)?.tag ?? 'none'}) does not know: run the newer version on it, or point MIRROR_DB_PATH at another file`,
    );
  }
}

/**
 * Throws NewerSchemaError when the file records a migration this version does not ship.
 * drizzle's migrator alone would apply nothing to such a file and let it start silently.
 */
export function refuseNewerSchema(sqlite: Database.Database, path: string): void {
  const applied = appliedMigrations(sqlite);
  if (applied.length === 0) return;
  const known = new Set(shippedMigrations().map((m) => m.when));
  const unknown = applied.filter((at) => !known.has(at)).length;
  if (unknown > 0) throw new NewerSchemaError(path, applied.length, unknown);
}
