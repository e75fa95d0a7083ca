import { accessSync, constants, existsSync, mkdirSync, readFileSync, statSync, unlinkSync, type BigIntStats } from 'node:fs';
import { dirname, join } from 'node:path';
import { NewerSchemaError } from './schema-version.ts';

// The mirror file as files on a disk: which file a path names, whether this process may
// write there, and what each failure to open or read it says to the person who must fix it.

/** How the file at the path differs from the open one: gone, another file, or (a copy in memory) changed since it was read. */
export type FileChange = 'deleted' | 'replaced' | 'changed';

/** The mirror file cannot be opened or used; the message names it and says what to do. */
export class MirrorFileError extends Error {
  override name = 'MirrorFileError';
  constructor(
    readonly path: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface FileId {
  dev: bigint;
  ino: bigint;
}

export const WAL = (path: string) => `${path}-wal`;
export const SHM = (path: string) => `${path}-shm`;

export function statOf(path: string): BigIntStats | undefined {
  try {
    return statSync(path, { bigint: true, throwIfNoEntry: false });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

export function idOf(path: string): FileId | undefined {
  try {
    const st = statSync(path, { bigint: true, throwIfNoEntry: false });
    return st && { dev: st.dev, ino: st.ino };
  } catch {
    return undefined;
  }
}

export const sameId = (a: FileId | undefined, b: FileId | undefined) => !!a && !!b && a.dev === b.dev && a.ino === b.ino;

/** Removes `path` if it is still the file `id` names (a -wal or -shm of the file that was replaced). */
export function removeIfSame(path: string, id: FileId | undefined): void {
  if (!sameId(idOf(path), id)) return;
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}

export function describeChange(path: string, change: FileChange): string {
  if (change === 'deleted') return `${path} was deleted while open: this process still reads the deleted file`;
  if (change === 'changed') return `${path} changed since this process read its copy`;
  return `${path} was replaced while open (a backup restored?): this process still reads the file it replaced`;
}

/** A failed read of the mirror file, in words naming it (and what to do when it is corrupted). */
export function describeReadError(path: string, err: unknown): string {
  const code = (err as { code?: string }).code;
  const message = (err as Error).message;
  if (code?.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
    return `${path} is corrupted (${message}): move it away or delete it; a replica loads the shared state into a new file`;
  }
  return `cannot read ${path}: ${message}${code ? ` (${code})` : ''}`;
}

/** Why this process cannot write `path` (on a read-only filesystem, permission denied), or undefined. */
export function writeProblem(path: string, mode = constants.W_OK): string | undefined {
  try {
    accessSync(path, mode);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EROFS') return 'on a read-only filesystem';
    if (code === 'EACCES' || code === 'EPERM') return `not writable by this process (uid ${process.getuid?.() ?? '?'}): permission denied`;
    if (code === 'ENOENT') return undefined;
    return (err as Error).message;
  }
}

function nearestExisting(dir: string): string {
  let d = dir;
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d);
  return d;
}

/** A writable open needs the directory (created if missing), the file and room for its -wal and -shm files next to it. */
export function requireWritable(path: string): void {
  const dir = dirname(path);
  const fix = 'or point MIRROR_DB_PATH elsewhere';
  if (!existsSync(dir)) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      const ancestor = nearestExisting(dir);
      const why = statOf(ancestor)?.isDirectory() === false ? 'a file, not a directory' : (writeProblem(ancestor) ?? (err as Error).message);
      throw new MirrorFileError(path, `cannot create the directory ${dir} for the mirror ${path}: ${ancestor} is ${why}: create it (writable by this user), ${fix}`, { cause: err });
    }
  }
  const st = statOf(path);
  if (st?.isDirectory()) return; // fileError names it
  const file = st ? writeProblem(path, constants.R_OK | constants.W_OK) : undefined;
  if (file) throw new MirrorFileError(path, `cannot write ${path}: it is ${file}: the replica writes it, ${fix} (a read-only api role can read it there)`);
  const room = writeProblem(dir);
  if (room) {
    throw new MirrorFileError(path, `cannot write ${path}: its directory ${dir} is ${room}, and SQLite keeps ${WAL(path)} and ${SHM(path)} there: make it writable, ${fix} (a read-only api role can read it there)`);
  }
}

/** The open of a read-only WAL file failed because SQLite cannot create its -shm (read-only filesystem or directory), with nothing left in a -wal. */
export function needsCopy(path: string, err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  if (!(code === 'SQLITE_CANTOPEN' || code.startsWith('SQLITE_READONLY'))) return false;
  if (!statOf(path)?.isFile() || existsSync(WAL(path)) || existsSync(SHM(path))) return false;
  return writeProblem(dirname(path)) !== undefined;
}

const HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/** The file's bytes as a database SQLite can open in memory: WAL mode (header bytes 18-19) turned off in the copy. */
export function readCopy(path: string): Buffer {
  const bytes = readFileSync(path);
  if (bytes.length < 100 || !bytes.subarray(0, 16).equals(HEADER)) throw new MirrorFileError(path, notADatabase(path));
  bytes[18] = 1;
  bytes[19] = 1;
  return bytes;
}

const notADatabase = (path: string) => `${path} is not a SQLite database: move it away or point MIRROR_DB_PATH elsewhere`;

/** An error of opening `path`, as one line naming the file and what to do. */
export function fileError(path: string, err: unknown, readonly: boolean): Error {
  if (err instanceof MirrorFileError || err instanceof NewerSchemaError) return err;
  const code = (err as { code?: string }).code ?? '';
  const message = (err as Error).message;
  const st = (() => {
    try {
      return statOf(path);
    } catch {
      return undefined;
    }
  })();
  const e = (text: string) => new MirrorFileError(path, text, { cause: err });
  if (st?.isDirectory()) return e(`${path} is a directory, not a SQLite file: point MIRROR_DB_PATH at a file (e.g. ${join(path, 'mirror.db')})`);
  if (code === 'SQLITE_NOTADB') return e(notADatabase(path));
  if (code.startsWith('SQLITE_CORRUPT')) return e(describeReadError(path, err));
  if (readonly && !st) return e(`cannot open the mirror at ${path}: there is no such file (run \`clerk-invitation-mirror migrate\` or start a replica to create it)`);
  if (readonly) {
    const file = writeProblem(path, constants.R_OK);
    if (file) return e(`cannot read ${path}: it is ${file}: fix its permissions, or point MIRROR_DB_PATH elsewhere`);
    const dir = writeProblem(dirname(path));
    if (dir && existsSync(WAL(path)) && !existsSync(SHM(path))) {
      return e(`cannot read ${path}: its directory is ${dir} and ${SHM(path)}, which SQLite needs to read the changes in ${WAL(path)}, is missing: start the replica that keeps it once, or mount the directory read-write`);
    }
  }
  return e(`cannot open the mirror at ${path}: ${message}${code ? ` (${code})` : ''}`);
}
