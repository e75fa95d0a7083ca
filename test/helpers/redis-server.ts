// The one place tests (and the benchmarks) start a redis-server: the run's shared server
// (global-setup.ts), a server of a test's own to kill or starve, and the reliability
// scenarios' servers. Arguments come from src/redis/managed.ts, as the managed server's do.
// No vitest import here: global-setup.ts and bench/ load this file too.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { withOneShotRedis } from '../../src/redis/connection.ts';
import { freePort, redisServerArgs } from '../../src/redis/managed.ts';

export { freePort };

/** The binary: `redis-server` on PATH unless REDIS_SERVER names another. */
export const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';

const READY = 'Ready to accept connections';

export interface RedisServerOptions {
  dir: string;
  /** `appendfsync` of its AOF, or false for none. @defaultValue false */
  appendfsync?: 'always' | 'everysec' | false;
  /** After the usual arguments (later ones win). */
  extraArgs?: string[];
  /** Instead of the usual arguments (redisServerArgs), e.g. a configuration under test; given the port. */
  args?: (port: number) => string[];
  /** @defaultValue 20000 */
  readyTimeoutMs?: number;
}

export interface RedisServer {
  url: string;
  port: number;
  dir: string;
  /** The running process (a new one after each `start`). */
  child(): ChildProcess;
  pid(): number;
  /** Sends `signal` (SIGKILL by default) and waits until the process is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and directory (an AOF is replayed); resolves once it accepts connections. */
  start(): Promise<void>;
  /** SIGKILL, waiting for the exit (a test server has nothing to flush). */
  stop(): Promise<void>;
}

/** Servers started here and not yet exited: killed when the process exits, or by killRedisServers(). */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

/** SIGKILLs every server this process started that still runs (an afterAll safety net). */
export function killRedisServers(): void {
  for (const c of running) c.kill('SIGKILL');
}

function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once('exit', () => resolve()));
}

/** Spawns redis-server with `args`; resolves once it prints that it accepts connections, else rejects with its output. */
function spawnReady(args: string[], timeoutMs: number): Promise<ChildProcess> {
  const proc = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  let seen = '';
  return new Promise<ChildProcess>((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      proc.stdout!.removeAllListeners('data');
      proc.stderr!.removeAllListeners('data');
      proc.removeListener('exit', onExit);
      proc.removeListener('error', onError);
      // Keep draining its output (an unread pipe fills up and blocks the server) without keeping it.
      proc.stdout!.resume();
      proc.stderr!.resume();
      if (err) {
        proc.kill('SIGKILL');
        reject(err);
      } else resolve(proc);
    };
    const timer = setTimeout(() => done(new Error(`redis-server did not start within ${timeoutMs} ms:\n${seen.slice(-2000)}`)), timeoutMs);
    const onExit = (code: number | null) => done(new Error(`redis-server exited (${code}) before it was ready:\n${seen.slice(-2000)}`));
    const onError = (err: Error) =>
      done(new Error(`cannot start ${REDIS_SERVER} (${err.message}); install it with \`apt-get install -y redis-server\`, or set TEST_REDIS_URL`));
    proc.once('exit', onExit);
    proc.once('error', onError);
    proc.stderr!.on('data', (d: Buffer) => (seen += d.toString()));
    proc.stdout!.on('data', (d: Buffer) => {
      seen += d.toString();
      if (seen.includes(READY)) done();
    });
  });
}

/** A redis-server on a free loopback port, storing in `dir` (created), ready when this resolves. */
export async function startRedisServer({ dir, appendfsync = false, extraArgs = [], args, readyTimeoutMs = 20_000 }: RedisServerOptions): Promise<RedisServer> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const argv = [...(args ? args(port) : redisServerArgs({ port, dir, appendfsync })), ...extraArgs];
  let proc: ChildProcess | undefined;
  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    child: () => proc!,
    pid: () => proc?.pid ?? -1,
    async start() {
      for (let attempt = 0; ; attempt++) {
        try {
          proc = await spawnReady(argv, readyTimeoutMs);
          return;
        } catch (err) {
          // After a kill the port may be held for a moment; try again briefly.
          if (attempt >= 20 || /cannot start/.test((err as Error).message)) throw err;
          await sleep(250);
        }
      }
    },
    async kill(signal = 'SIGKILL') {
      if (!proc) return;
      const p = proc;
      p.kill(signal);
      await exited(p);
    },
    stop: () => server.kill('SIGKILL'),
  };
  await server.start();
  return server;
}

/** Whether a Redis answers PING at `url` (without retrying). */
export async function redisAnswers(url: string): Promise<boolean> {
  return withOneShotRedis(url, async (r) => (await r.ping()) === 'PONG').catch(() => false);
}

/** A redis-server of the test's own in `dir` (no AOF), to kill or starve under a running service. */
export async function ownRedis(dir: string, extraArgs: string[] = []): Promise<{ url: string; server: ChildProcess }> {
  const r = await startRedisServer({ dir, extraArgs });
  return { url: r.url, server: r.child() };
}
