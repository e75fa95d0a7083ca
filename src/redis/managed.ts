import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
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
 * loopback only, AOF on (a 2xx to Svix must survive a crash), and `noeviction` (BullMQ must
 * never lose keys to memory pressure).
 */
export class ManagedRedis {
  private child: ChildProcess | undefined;
  private adopted: string | undefined;
  url = '';

  constructor(private readonly opts: ManagedRedisOptions) {}

  /** The file where a running private redis-server leaves its URL, for `failed` and for adoption. */
  get urlFile(): string {
    return join(this.opts.dir, 'redis.url');
  }

  /**
   * Starts redis-server, or adopts the one a previous run left behind on the same data
   * directory (after a crash it outlives its parent; two servers on one AOF would corrupt it).
   */
  async start(): Promise<string> {
    mkdirSync(this.opts.dir, { recursive: true });
    const running = await runningManagedRedis(this.opts.dir);
    if (running) {
      this.adopted = running;
      this.url = running;
      return running;
    }
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
    writeFileSync(this.urlFile, `${this.url}\n`);
    return this.url;
  }

  /**
   * Stops redis-server: SIGTERM, on which it flushes the AOF and exits by itself; waits up to
   * `waitMs` for that, then SIGKILL.
   */
  async stop(waitMs = 5000): Promise<void> {
    rmSync(this.urlFile, { force: true });
    if (this.adopted) {
      const r = new Redis(this.adopted, { lazyConnect: true, maxRetriesPerRequest: 0 });
      await r.connect().then(() => r.shutdown()).catch(() => {});
      r.disconnect();
      return;
    }
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), waitMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
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

/**
 * Arguments of a private redis-server: loopback only, no RDB snapshots, `noeviction` (an
 * evicted job is a lost event) and, unless `appendfsync` is false, AOF with that policy.
 */
export function redisServerArgs({ port, dir, appendfsync = 'everysec' }: { port: number; dir: string; appendfsync?: 'everysec' | 'always' | false }): string[] {
  const aof = appendfsync === false ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', appendfsync];
  return ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...aof, '--save', '', '--maxmemory-policy', 'noeviction', '--protected-mode', 'yes'];
}

/** The URL of a private redis-server already serving `dir`, if one answers. */
export async function runningManagedRedis(dir: string): Promise<string | undefined> {
  let url: string;
  try {
    url = readFileSync(join(dir, 'redis.url'), 'utf8').trim();
  } catch {
    return undefined;
  }
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  try {
    await r.connect();
    return (await r.ping()) === 'PONG' ? url : undefined;
  } catch {
    return undefined;
  } finally {
    r.disconnect();
  }
}
