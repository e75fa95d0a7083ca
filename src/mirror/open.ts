import Database from 'better-sqlite3';
import { eq } from 'drizzle-orm';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { existsSync } from 'node:fs';
import * as schema from './schema.ts';
import {
  describeChange,
  describeReadError,
  fileError,
  idOf,
  MirrorFileError,
  needsCopy,
  readCopy,
  removeIfSame,
  requireWritable,
  sameId,
  SHM,
  statOf,
  WAL,
  type FileChange,
  type FileId,
} from './file.ts';
import { appliedMigrations, refuseNewerSchema, shippedMigrations } from './schema-version.ts';

export type MirrorDb = BetterSQLite3Database<typeof schema>;

export interface OpenOptions {
  /** Path of the SQLite file; `:memory:` is accepted for throwaway use. */
  path: string;
  /**
   * Open for reading only, as other processes on the host do while the replica writes.
   * @defaultValue false
   */
  readonly?: boolean;
  /**
   * How long a statement waits for another connection's lock before failing, in ms: what
   * reads get. The replica's writes wait much less (replica/writer.ts) and retry later, so a
   * lock held elsewhere never blocks the event loop for long.
   * @defaultValue 5000
   */
  busyTimeoutMs?: number;
  /**
   * Read-only connections: how often to check that `path` still names the open file, and
   * open it again when it was replaced (a backup restored by rename, a replica that recreated
   * a deleted file). A check is one `stat`, never part of a lookup. 0: never.
   * @defaultValue 2000
   */
  watchMs?: number;
}

/** What this connection knows of the files at its path while they are the ones it opened. */
interface Seen {
  db?: FileId & { size: bigint; mtimeNs: bigint };
  /** The -wal and -shm files next to it, as last seen while the database file was still ours. */
  wal?: FileId;
  shm?: FileId;
}

/** A handle just opened, and whether it is a copy in memory (MirrorConnection.snapshot). */
interface Opened {
  sqlite: Database.Database;
  snapshot: boolean;
}

/**
 * The mirror's SQLite file, opened with the pragmas every connection needs. The cache and mmap
 * sizes keep a large mirror's lookups in memory after the first touch (`lookup.inprocess` in BENCHMARKS.md).
 *
 * `sqlite` and `db` are the handles of the file open now: `reopen` swaps them when the path
 * names another file (deleted and recreated, or replaced), and tells `onReopen` listeners, so
 * that prepared statements are prepared again on the new handle.
 */
export class MirrorConnection {
  readonly path: string;
  readonly readonly: boolean;
  readonly busyTimeoutMs: number;
  /**
   * Read-only and opened from a copy in memory: the file is on a read-only filesystem without
   * its -shm file, where SQLite cannot open a WAL-mode file in place. The copy is read again
   * when the file changes.
   */
  snapshot = false;
  /** Why the open file is not (or no longer) the usable file at `path`; undefined while it is. */
  problem: string | undefined;
  /** Times the file was opened again since the first open. */
  reopens = 0;
  private handle!: Database.Database;
  private orm!: MirrorDb;
  private seen: Seen = {};
  private readonly listeners = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;

  constructor({ path, readonly = false, busyTimeoutMs = 5000, watchMs = 2000 }: OpenOptions) {
    this.path = path;
    this.readonly = readonly;
    this.busyTimeoutMs = busyTimeoutMs;
    this.swap(this.connect());
    if (readonly && watchMs > 0) {
      this.timer = setInterval(() => this.watch(), watchMs);
      this.timer.unref();
    }
  }

  /** The better-sqlite3 handle of the file open now. */
  get sqlite(): Database.Database {
    return this.handle;
  }

  /** drizzle over `sqlite`. */
  get db(): MirrorDb {
    return this.orm;
  }

  /** Calls `fn` after each reopen, once the new file is in place; returns a function that removes it. */
  onReopen(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Whether `path` still names the open file (one `stat`): undefined when it does, else how it
   * differs. While it does, `noteCompanions` also notes the -wal and -shm files next to it as
   * this file's (two more; the timers and /readyz do, a write batch does not need to).
   */
  fileChange({ noteCompanions = true }: { noteCompanions?: boolean } = {}): FileChange | undefined {
    if (this.path === ':memory:') return undefined;
    const now = statOf(this.path);
    if (!now) return 'deleted';
    const was = this.seen.db;
    if (!was || now.ino !== was.ino || now.dev !== was.dev) return 'replaced';
    if (this.snapshot) return now.size !== was.size || now.mtimeNs !== was.mtimeNs || existsSync(WAL(this.path)) ? 'changed' : undefined;
    if (noteCompanions) {
      this.seen.wal = idOf(WAL(this.path));
      this.seen.shm = idOf(SHM(this.path));
    }
    return undefined;
  }

  /**
   * Opens the file at `path` again, after `fileChange` said it is another one (or none).
   *
   * A writable connection closes the old file first, then removes the -wal and -shm files it
   * leaves at the path (SQLite would read another file's WAL into the new one), then opens the
   * path (creating it when it is gone) and runs `prepare` (the replica migrates) before the
   * listeners hear of it. When that fails, the connection stays closed and `problem` says why.
   *
   * A read-only connection opens the new file first and keeps the old one until the new one is
   * a migrated mirror; it waits while the old file's -wal is still at the path (the replica
   * removes it), and while the path is gone.
   * @throws MirrorFileError
   */
  reopen(prepare?: () => void): void {
    if (this.readonly) return this.reopenForReading();
    const old = this.handle;
    const stale = this.seen;
    this.seen = {};
    close(old);
    removeIfSame(WAL(this.path), stale.wal);
    removeIfSame(SHM(this.path), stale.shm);
    try {
      this.swap(this.connect());
      prepare?.();
    } catch (err) {
      close(this.handle);
      this.seen = {};
      const e = fileError(this.path, err, false);
      this.problem = e.message;
      throw e;
    }
    this.reopened();
  }

  private reopenForReading(): void {
    const { path } = this;
    if (!existsSync(path)) throw this.fail(`${path} was deleted: serving the rows read before until a replica creates it again`);
    const wal = idOf(WAL(path));
    if (!this.snapshot && wal && sameId(wal, this.seen.wal)) {
      throw this.fail(`${path} was replaced, but the -wal file of the one it replaced is still next to it: serving the old file's rows until the replica removes it`);
    }
    let next: Opened;
    try {
      next = this.connect();
    } catch (err) {
      throw this.fail(fileError(path, err, true).message);
    }
    if (appliedMigrations(next.sqlite).length < shippedMigrations().length) {
      close(next.sqlite);
      throw this.fail(`${path} was replaced by a file that is not a migrated mirror (yet): serving the old file's rows meanwhile`);
    }
    const old = this.handle;
    this.swap(next);
    this.reopened();
    close(old);
  }

  private fail(message: string): MirrorFileError {
    this.problem = message;
    return new MirrorFileError(this.path, message);
  }

  private reopened(): void {
    this.reopens++;
    this.problem = undefined;
    for (const l of this.listeners) {
      try {
        l();
      } catch (err) {
        this.problem = `${this.path} was opened again, but cannot be read: ${(err as Error).message}`;
      }
    }
  }

  /** The watch of a read-only connection: reopens a replaced file; stops once the owner closed the handle. */
  private watch(): void {
    if (!this.handle.open && this.problem === undefined) return this.stopWatch();
    try {
      if (!this.fileChange()) {
        if (this.handle.open) this.problem = undefined;
        return;
      }
      this.reopen();
    } catch (err) {
      this.problem ??= (err as Error).message;
    }
  }

  private stopWatch(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Whether the path still names the open file, and it is open: true, or why not, naming the file. */
  fileHealth(): true | string {
    try {
      const change = this.fileChange();
      if (change) return this.problem ?? describeChange(this.path, change);
    } catch (err) {
      return `cannot stat ${this.path}: ${(err as Error).message}`;
    }
    if (this.problem) return this.problem;
    if (!this.handle.open) return `${this.path} is closed`;
    return true;
  }

  /**
   * A real read through this connection (of a migrated file): the position row, a probe of
   * the invitations' id index and the first row of their table, a few pages whatever the
   * size. True, or why not, naming the file.
   */
  readHealth(): true | string {
    try {
      const { organizationInvitations: inv, replicaPosition } = schema;
      this.orm.select({ seq: replicaPosition.seq }).from(replicaPosition).where(eq(replicaPosition.id, 1)).get();
      this.orm.select({ id: inv.id }).from(inv).where(eq(inv.id, '')).get();
      this.orm.select({ raw: inv.raw }).from(inv).limit(1).get();
    } catch (err) {
      return describeReadError(this.path, err);
    }
    return true;
  }

  /** Stops the watch and closes the file. */
  close(): void {
    this.stopWatch();
    this.listeners.clear();
    close(this.handle);
  }

  private swap({ sqlite, snapshot }: Opened): void {
    this.handle = sqlite;
    this.snapshot = snapshot;
    this.orm = drizzle(sqlite, { schema });
    this.seen = this.identify();
  }

  private identify(): Seen {
    if (this.path === ':memory:') return {};
    const st = statOf(this.path);
    if (!st) return {};
    return { db: { dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs }, wal: idOf(WAL(this.path)), shm: idOf(SHM(this.path)) };
  }

  /** Opens the path with the pragmas and one read, so that a file SQLite cannot use fails here. */
  private connect(): Opened {
    const { path, readonly } = this;
    if (path === ':memory:') return { sqlite: configure(new Database(path), false, path), snapshot: false };
    try {
      if (!readonly) requireWritable(path);
      return { sqlite: configure(new Database(path, { readonly, fileMustExist: readonly, timeout: this.busyTimeoutMs }), readonly, path), snapshot: false };
    } catch (err) {
      if (!(readonly && needsCopy(path, err))) throw fileError(path, err, readonly);
      return { sqlite: configure(new Database(readCopy(path), { readonly: true }), true, path), snapshot: true };
    }
  }
}

/** Opens the mirror's SQLite file (see MirrorConnection). @throws MirrorFileError naming the file and what to do */
export function openMirrorDb(options: OpenOptions): MirrorConnection {
  return new MirrorConnection(options);
}

function configure(sqlite: Database.Database, readonly: boolean, path: string): Database.Database {
  try {
    // WAL lets readers in other processes read while the replica writes; a reader cannot
    // switch modes, it inherits what the writer set on the file.
    if (!readonly) sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('cache_size = -65536'); // 64 MiB
    sqlite.pragma('mmap_size = 268435456'); // 256 MiB
    if (!readonly) sqlite.pragma('temp_store = MEMORY');
    // SQLite's default checkpoint interval (1000 pages) is kept on purpose: a replica checkpoints
    // inside the commit of a batch, and the larger interval once chosen for bulk writes made each
    // checkpoint long enough to show in replica.lag_ms's p99 (BENCHMARKS.md).
    // The first read: a file that is not a database, or a directory, fails here, not in a lookup.
    // SQLite's own catalogue, read before drizzle wraps the handle: none of the schema's tables.
    sqlite.prepare('SELECT count(*) FROM sqlite_master').get();
    refuseNewerSchema(sqlite, path);
    return sqlite;
  } catch (err) {
    close(sqlite);
    throw err;
  }
}

function close(sqlite: Database.Database | undefined): void {
  try {
    if (sqlite?.open) sqlite.close();
  } catch {
    // a file that fails while closing is being replaced anyway
  }
}
