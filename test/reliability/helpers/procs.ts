// Real processes for the reliability scenarios: a redis-server of the scenario's own (so it
// can be killed without touching the shared one from global-setup) and the service started
// through its binary, exactly as an operator would, with its output captured.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, startRedisServer, type RedisServer } from '../../helpers/redis-server.ts';

export { freePort, REDIS_SERVER } from '../../helpers/redis-server.ts';

export const ROOT = join(import.meta.dirname, '../../..');
export const BIN = join(ROOT, 'bin/clerk-invitation-mirror.js');

function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once('exit', () => resolve()));
}

export type RedisProc = RedisServer;

/**
 * A redis-server on a free port with AOF on and `appendfsync always`: the receiver's 2xx
 * promises durability, and this makes "durable" mean on disk, not in the page cache.
 */
export function startRedis(dir: string, { aof = true, fsync = 'always' }: { aof?: boolean; fsync?: 'always' | 'everysec' } = {}): Promise<RedisProc> {
  return startRedisServer({ dir, appendfsync: aof ? fsync : false });
}

export interface ServiceProc {
  url: string;
  port: number;
  pid(): number;
  /** Everything the process wrote to stdout and stderr, over all of its (re)starts. */
  output(): string;
  /** VmRSS of the live process in bytes, from /proc/<pid>/status. */
  rss(): number;
  rssParts(): { total: number; anon: number; file: number };
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again with the same environment and port. */
  start(): Promise<void>;
  /** SIGTERM, then SIGKILL after 15 s. */
  stop(): Promise<void>;
  exitCode(): number | null;
  alive(): boolean;
}

export interface ServiceEnv {
  CLERK_SECRET_KEY?: string;
  CLERK_WEBHOOK_SIGNING_SECRET?: string;
  CLERK_API_URL?: string;
  REDIS_URL: string;
  MIRROR_DB_PATH: string;
  MIRROR_API_KEY?: string;
  LOG_LEVEL?: string;
  BAPI_RATE_LIMIT?: string;
  BAPI_RATE_WINDOW_MS?: string;
  BAPI_TIMEOUT_MS?: string;
  CHANGE_STREAM_RETENTION_MS?: string;
}

export function readRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/**
 * RSS split as /proc reports it: `anon` is the heap, native allocations and SQLite's page
 * cache; `file` is file-backed pages, here mostly the mirror DB mapped by SQLite's mmap,
 * which grow with the database and which the kernel reclaims under pressure.
 */
export function readRssParts(pid: number): { total: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { total: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') + kb('RssShmem') };
}

/** `node bin/clerk-invitation-mirror.js start [--role …]`, ready once GET /healthz answers 200. */
export async function spawnService(env: ServiceEnv, { roles = [] as string[], port }: { roles?: string[]; port?: number } = {}): Promise<ServiceProc> {
  const p = port ?? (await freePort());
  const chunks: string[] = [];
  let proc: ChildProcess | undefined;
  const args = [BIN, 'start', ...roles.flatMap((r) => ['--role', r])];
  const s: ServiceProc = {
    url: `http://127.0.0.1:${p}`,
    port: p,
    pid: () => proc?.pid ?? -1,
    output: () => chunks.join(''),
    rss: () => readRss(proc!.pid!),
    rssParts: () => readRssParts(proc!.pid!),
    exitCode: () => proc?.exitCode ?? null,
    alive: () => !!proc && proc.exitCode === null && proc.signalCode === null,
    async start() {
      const childEnv: Record<string, string> = {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? '/tmp',
        NODE_ENV: 'production',
        HOST: '127.0.0.1',
        PORT: String(p),
        LOG_LEVEL: 'info',
        // No scheduled reconciliation: its start-up pass would copy invitations from BAPI's
        // lists and could hide a webhook the pipeline lost. Scenarios prove the webhook path.
        RECONCILE_INTERVAL_MS: '0',
        ...(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)) as Record<string, string>),
      };
      proc = spawn(process.execPath, args, { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
      proc.stdout!.on('data', (d: Buffer) => chunks.push(d.toString()));
      proc.stderr!.on('data', (d: Buffer) => chunks.push(d.toString()));
      const started = proc;
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        if (started.exitCode !== null || started.signalCode !== null) {
          throw new Error(`service exited (${started.exitCode ?? started.signalCode}) during start-up:\n${s.output().slice(-3000)}`);
        }
        try {
          const res = await fetch(`${s.url}/healthz`, { signal: AbortSignal.timeout(1000) });
          await res.arrayBuffer();
          if (res.ok) return;
        } catch {
          // not listening yet
        }
        await sleep(100);
      }
      throw new Error(`service did not answer /healthz within 60 s:\n${s.output().slice(-3000)}`);
    },
    async kill(signal = 'SIGKILL') {
      if (!proc) return;
      const c = proc;
      c.kill(signal);
      await exited(c);
    },
    async stop() {
      if (!proc || !s.alive()) return;
      const c = proc;
      c.kill('SIGTERM');
      const timer = setTimeout(() => c.kill('SIGKILL'), 15_000);
      await exited(c);
      clearTimeout(timer);
    },
  };
  await s.start();
  return s;
}
