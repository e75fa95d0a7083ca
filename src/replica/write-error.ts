/** What a failed write says for each of SQLite's primary codes. */
const WRITE_HINTS: Record<string, string> = {
  SQLITE_FULL: 'the disk is full: free space, and the replica catches up by itself',
  SQLITE_BUSY: 'another process holds its write lock (run one replica per file; a sqlite3 shell or a backup tool?)',
  SQLITE_LOCKED: 'another process holds its write lock (run one replica per file; a sqlite3 shell or a backup tool?)',
  SQLITE_READONLY: 'the file or its directory has become read-only: make them writable again',
  SQLITE_IOERR: 'the disk or the filesystem fails',
  SQLITE_CORRUPT: 'the file is corrupted: delete it (or move it away) and the replica loads the shared state into a new one',
  SQLITE_NOTADB: 'the file is not a database: delete it (or move it away) and the replica loads the shared state into a new one',
  SQLITE_CANTOPEN: 'SQLite cannot open its -wal or -shm file: check the directory',
};

/** SQLite's primary result code of an error (`SQLITE_IOERR` for `SQLITE_IOERR_WRITE`), or undefined for another error. */
export function sqliteCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return undefined;
  return /^SQLITE_[A-Z]+/.exec(code)![0];
}

/** A write (or a read of the file between writes) failed; nothing was applied and the position did not move. */
export class ReplicaWriteError extends Error {
  override name = 'ReplicaWriteError';
  readonly code: string;
  constructor(path: string, cause: unknown) {
    const code = sqliteCode(cause) ?? 'SQLITE_ERROR';
    const hint = WRITE_HINTS[code];
    super(`cannot write ${path}: ${(cause as Error).message} (${(cause as { code?: string }).code ?? code})${hint ? `: ${hint}` : ''}`, { cause });
    this.code = code;
  }
}
