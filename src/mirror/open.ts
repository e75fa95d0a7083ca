import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import * as schema from './schema.ts';

export type MirrorDb = BetterSQLite3Database<typeof schema>;

export interface OpenOptions {
  /** Path of the SQLite file; `:memory:` is accepted for throwaway use. */
  path: string;
  /**
   * Open for reading only, as other processes on the host do while the worker writes.
   * @defaultValue false
   */
  readonly?: boolean;
  /**
   * How long a statement waits for another connection's lock before failing, in ms.
   * @defaultValue 5000
   */
  busyTimeoutMs?: number;
}

export interface MirrorConnection {
  readonly sqlite: Database.Database;
  readonly db: MirrorDb;
  readonly path: string;
  readonly readonly: boolean;
}

/**
 * Opens the mirror's SQLite file with the pragmas every connection needs. The cache and mmap
 * sizes keep lookups of a 100k-row mirror in memory after the first touch (see BENCHMARKS.md).
 */
export function openMirrorDb({ path, readonly = false, busyTimeoutMs = 5000 }: OpenOptions): MirrorConnection {
  if (!readonly && path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const sqlite = new Database(path, { readonly, fileMustExist: readonly });
  sqlite.pragma(`busy_timeout = ${busyTimeoutMs}`);
  // WAL lets readers in other processes read while the worker writes; a reader cannot
  // switch modes, it inherits what the writer set on the file.
  if (!readonly) sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('cache_size = -65536'); // 64 MiB
  sqlite.pragma('mmap_size = 268435456'); // 256 MiB
  if (!readonly) sqlite.pragma('temp_store = MEMORY');
  // SQLite's default checkpoint interval (1000 pages) is kept on purpose: a replica checkpoints
  // inside the commit of a batch, and the larger interval once chosen for bulk writes made each
  // checkpoint long enough to show in replica.lag_ms's p99 (BENCHMARKS.md).
  return { sqlite, db: drizzle(sqlite, { schema }), path, readonly };
}
