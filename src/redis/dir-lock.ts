import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';

/**
 * A lock file holding its owner's pid. Taken with O_EXCL; a file whose pid is no longer
 * alive (its process crashed) is taken over. Not for machines sharing a directory over a
 * network file system: pids are per host.
 */
export class DirLock {
  private constructor(private readonly path: string) {}

  /** @throws whatever `busy(holder)` builds when a live process holds it */
  static acquire(path: string, busy: (holder: number) => Error): DirLock {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = openSync(path, 'wx');
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return new DirLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = Number(readSafely(path).trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) throw busy(holder);
      // Dead holder, our own stale file, or a half-written one: take it over.
      rmSync(path, { force: true });
    }
    throw new Error(`cannot take the lock ${path}`);
  }

  /** Removes the file if it is still ours. */
  release(): void {
    if (Number(readSafely(this.path).trim()) === process.pid) rmSync(this.path, { force: true });
  }
}

function readSafely(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: alive, another user's.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
