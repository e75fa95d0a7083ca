import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { realpathSync } from 'node:fs';
import { DirLock } from './dir-lock.ts';
import { withOneShotRedis } from './connection.ts';
import { createServer } from 'node:net';

export interface ManagedRedisOptions {
  /** Where AOF files live; the service puts it next to the mirror database. */
  dir: string;
  /** @defaultValue a free port on 127.0.0.1 */
  port?: number;
  /** @defaultValue 'redis-server' */
  binary?: string;
  /** @defaultValue 10000 */
  startTimeoutMs?: number;
}

/** Raised when redis-server is not installed; the message says how to get it. */
export class RedisNotInstalledError extends Error {
  override name = 'RedisNotInstalledError';
  constructor() {
    super(
      'REDIS_URL is unset and redis-server is not installed: install it (apt-get install -y redis-server, or brew install redis), run `docker compose up -d redis`, or set REDIS_URL to a running Redis',
    );
  }
}

/**
 * A private redis-server started and stopped with the process, for when REDIS_URL is unset:
 * loopback only, AOF with `appendfsync always` (a 2xx to Svix must survive a crash), and `noeviction` (BullMQ must
 * never lose keys to memory pressure).
 */
export class ManagedRedis {
  private child: ChildProcess | undefined;
  private adopted: string | undefined;
  private lock: DirLock | undefined;
  url = '';

  constructor(private readonly opts: ManagedRedisOptions) {}

  /** The file where a running private redis-server leaves its URL, for `failed` and for adoption. */
  get urlFile(): string {
    return join(this.opts.dir, 'redis.url');
  }

  /**
   * Starts redis-server, or adopts the one a previous run left behind on the same data
   * directory (after a crash it outlives its parent; two servers on one AOF would corrupt it),
   * but only once that server is proven to be the one started there (its run id and data
   * directory), never whatever now answers on a stale URL. The directory is locked for as
   * long as this runs: a second process refuses rather than share or stop the server.
   *
   * @throws ManagedRedisInUseError when another live process holds the directory
   */
  async start(): Promise<string> {
    mkdirSync(this.opts.dir, { recursive: true });
    this.lock = DirLock.acquire(join(this.opts.dir, 'redis.lock'), (holder) => new ManagedRedisInUseError(this.opts.dir, holder));
    const running = await runningManagedRedis(this.opts.dir);
    if (running) {
      this.adopted = running;
      this.url = running;
      return running;
    }
    // A URL nobody proved ours any more: forget it, never adopt or stop what answers there.
    rmSync(this.urlFile, { force: true });
    rmSync(join(this.opts.dir, OWNER_FILE), { force: true });
    const port = this.opts.port ?? (await freePort());
    const args = redisServerArgs({ port, dir: this.opts.dir });
    // Its own process group: a Ctrl-C, `timeout` or a service manager signalling our group
    // must not stop Redis before we have stopped using it; `stop` ends it last.
    const child = spawn(this.opts.binary ?? 'redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child = child;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start within ${this.opts.startTimeoutMs ?? 10_000} ms: ${output.slice(-300)}`)), this.opts.startTimeoutMs ?? 10_000);
      child.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(err.code === 'ENOENT' ? new RedisNotInstalledError() : err);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with code ${code}: ${output.slice(-300)}`));
      });
      child.stdout!.on('data', (chunk: Buffer) => {
        // Drained for its whole life (a full pipe would block it), kept only until ready.
        if (output.length > 64_000) return;
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.stderr!.on('data', (chunk: Buffer) => {
        if (output.length <= 64_000) output += chunk.toString();
      });
    });
    child.removeAllListeners('exit');
    this.url = `redis://127.0.0.1:${port}`;
    const runId = await serverIdentity(this.url);
    writeFileSync(join(this.opts.dir, OWNER_FILE), `${JSON.stringify({ url: this.url, runId: runId?.runId, pid: child.pid })}\n`);
    writeFileSync(this.urlFile, `${this.url}\n`);
    return this.url;
  }

  /**
   * Stops redis-server: SIGTERM, on which it flushes the AOF and exits by itself; waits up to
   * `waitMs` for that, then SIGKILL.
   */
  async stop(waitMs = 5000): Promise<void> {
    if (!this.lock) return;
    try {
      rmSync(this.urlFile, { force: true });
      rmSync(join(this.opts.dir, OWNER_FILE), { force: true });
      if (this.adopted) {
        await withOneShotRedis(this.adopted, (r) => r.shutdown()).catch(() => {});
        return;
      }
      const child = this.child;
      if (!child || child.exitCode !== null) return;
      await new Promise<void>((done) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), waitMs);
        child.once('exit', () => {
          clearTimeout(timer);
          done();
        });
        child.kill('SIGTERM');
      });
    } finally {
      this.lock.release();
      this.lock = undefined;
    }
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** The fsync policy of the private redis-server, and of the reliability scenarios that test it. */
export const MANAGED_APPENDFSYNC: 'always' | 'everysec' = 'always';

/**
 * Arguments of a private redis-server: loopback only, no RDB snapshots, `noeviction` (an
 * evicted job is a lost event) and, unless `appendfsync` is false, AOF with that policy:
 * `always` by default, since a 2xx to Svix promises the job survives a crash (with
 * `everysec` up to a second of acknowledged jobs is lost; RELIABILITY.md, BENCHMARKS.md).
 */
export function redisServerArgs({ port, dir, appendfsync = MANAGED_APPENDFSYNC }: { port: number; dir: string; appendfsync?: 'everysec' | 'always' | false }): string[] {
  const aof = appendfsync === false ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', appendfsync];
  return ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...aof, '--save', '', '--maxmemory-policy', 'noeviction', '--protected-mode', 'yes'];
}

/** Raised when another live process runs the private redis-server of a data directory. */
export class ManagedRedisInUseError extends Error {
  override name = 'ManagedRedisInUseError';
  constructor(dir: string, holder: number) {
    super(`another process (pid ${holder}) runs the private redis-server in ${dir}: stop it first, give this one another MIRROR_DB_PATH, or set REDIS_URL to share one Redis`);
  }
}

/** Who started the server of a data directory: written next to `redis.url`, checked before adopting it. */
const OWNER_FILE = 'redis.owner.json';

async function serverIdentity(url: string): Promise<{ runId: string; dir: string } | undefined> {
  try {
    return await withOneShotRedis(
      url,
      async (r) => {
        const runId = /^run_id:(\w+)/m.exec(await r.info('server'))?.[1];
        const [, dir] = (await r.config('GET', 'dir')) as [string, string];
        return runId ? { runId, dir } : undefined;
      },
      { connectTimeoutMs: 1000 },
    );
  } catch {
    return undefined;
  }
}

/**
 * The URL of the private redis-server serving `dir`, if one answers there and is proven to
 * be it: `dir` is its data directory, and it has the run id recorded when it started (a
 * server an older version left has no record: its directory is the proof). A stale
 * `redis.url` (that server gone, another Redis on its port since) answers undefined.
 */
export async function runningManagedRedis(dir: string): Promise<string | undefined> {
  let owner: { url?: string; runId?: string } = {};
  try {
    owner = JSON.parse(readFileSync(join(dir, OWNER_FILE), 'utf8')) as typeof owner;
  } catch {
    try {
      owner = { url: readFileSync(join(dir, 'redis.url'), 'utf8').trim() };
    } catch {
      return undefined;
    }
  }
  if (!owner.url) return undefined;
  const found = await serverIdentity(owner.url);
  if (!found || realDir(found.dir) !== realDir(dir)) return undefined;
  return owner.runId === undefined || found.runId === owner.runId ? owner.url : undefined;
}

/** Redis reports its working directory with symlinks resolved. */
function realDir(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return resolve(dir);
  }
}
