import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import type { MirrorConnection } from './open.ts';

/** `migrations/` at the package root, from both `src/mirror/` and `dist/mirror/`. */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../migrations', import.meta.url));

/** A migration failed; its transaction was rolled back. The message is SQLite's, without the SQL text. */
export class MigrationError extends Error {
  constructor(cause: unknown) {
    // drizzle wraps SQLite's error in "Failed to run the query '<whole statement>'"; the cause says why.
    const root = (cause as { cause?: unknown }).cause ?? cause;
    super(`migration failed: ${root instanceof Error ? root.message : String(root)}`, { cause });
    this.name = 'MigrationError';
  }
}

/**
 * Applies every migration not yet applied, in one transaction each. It throws on failure:
 * a mirror with a half-known schema must not start.
 */
export function migrateMirror(conn: MirrorConnection): { applied: number; total: number } {
  if (conn.readonly) throw new Error('cannot migrate a mirror opened read-only');
  const before = appliedCount(conn);
  try {
    migrate(conn.db, { migrationsFolder: MIGRATIONS_FOLDER });
  } catch (err) {
    throw new MigrationError(err);
  }
  return { applied: appliedCount(conn) - before, total: expectedMigrations() };
}

/** Number of migrations shipped with this version. */
export function expectedMigrations(): number {
  const journal = JSON.parse(readFileSync(`${MIGRATIONS_FOLDER}/meta/_journal.json`, 'utf8')) as { entries: unknown[] };
  return journal.entries.length;
}

/** Number of migrations recorded in the database (0 when it was never migrated). */
export function appliedCount(conn: MirrorConnection): number {
  const table = conn.sqlite
    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '__drizzle_migrations'")
    .get();
  if (!table) return 0;
  return (conn.sqlite.prepare('SELECT count(*) AS n FROM __drizzle_migrations').get() as { n: number }).n;
}

/** True when the file's schema is what this version of the code expects. */
export function isMigrated(conn: MirrorConnection): boolean {
  return appliedCount(conn) >= expectedMigrations();
}
