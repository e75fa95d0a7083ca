import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { describeReadError } from './file.ts';
import type { MirrorConnection } from './open.ts';
import { MIGRATIONS_FOLDER, appliedMigrations, refuseNewerSchema, shippedMigrations } from './schema-version.ts';

export { MIGRATIONS_FOLDER, NewerSchemaError } from './schema-version.ts';

/** A migration failed; its transaction was rolled back. The message is SQLite's, without the SQL text. */
export class MigrationError extends Error {
  constructor(cause: unknown, path?: string) {
    // drizzle wraps SQLite's error in "Failed to run the query '<whole statement>'"; the cause says why.
    const root = (cause as { cause?: unknown }).cause ?? cause;
    super(`migration${path ? ` of ${path}` : ''} failed: ${root instanceof Error ? root.message : String(root)}`, { cause });
    this.name = 'MigrationError';
  }
}

/**
 * Applies every migration not yet applied, in one transaction each. It throws on failure:
 * a mirror with a half-known schema must not start. A file written by a newer version is
 * refused (NewerSchemaError) before anything is applied.
 */
export function migrateMirror(conn: MirrorConnection): { applied: number; total: number } {
  if (conn.readonly) throw new Error('cannot migrate a mirror opened read-only');
  refuseNewerSchema(conn.sqlite, conn.path);
  const before = appliedCount(conn);
  try {
    migrate(conn.db, { migrationsFolder: MIGRATIONS_FOLDER });
  } catch (err) {
    throw new MigrationError(err, conn.path);
  }
  return { applied: appliedCount(conn) - before, total: expectedMigrations() };
}

/** Number of migrations shipped with this version. */
export function expectedMigrations(): number {
  return shippedMigrations().length;
}

/** Number of migrations recorded in the database (0 when it was never migrated). */
export function appliedCount(conn: MirrorConnection): number {
  return appliedMigrations(conn.sqlite).length;
}

/** True when the file's schema is what this version of the code expects. */
export function isMigrated(conn: MirrorConnection): boolean {
  return appliedCount(conn) >= expectedMigrations();
}

/**
 * `/readyz`'s check of the mirror file: the path still names the open file, its schema is
 * this version's, and a real read through the connection works (MirrorConnection.readHealth).
 * True, or why not, naming the file.
 */
export function mirrorReadiness(conn: MirrorConnection): true | string {
  const file = conn.fileHealth();
  if (file !== true) return file;
  try {
    if (!isMigrated(conn)) return `${conn.path}: migrations not applied`;
  } catch (err) {
    return describeReadError(conn.path, err);
  }
  return conn.readHealth();
}
