// Shared plumbing of the pipeline benchmarks: a private redis-server, the BAPI simulator in a
// child process, the service (silent) in this process, a child process that generates load,
// and cleanup of all of it even when a benchmark throws half-way.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { MANAGED_APPENDFSYNC } from '../src/redis/managed.ts';
import { startService, type Role, type Service } from '../src/service.ts';
import { startRedisServer } from '../test/helpers/redis-server.ts';
import type { LoadInput, LoadOutput } from './load-client.ts';
import type { SimChildInput, SimChildOutput } from './sim-child.ts';

/** Children still running; killed synchronously if the bench process exits without stopping them. */
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function stopChild(child: ChildProcess, timeoutMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export interface BenchRedis {
  url: string;
  /** For reading its CPU time from /proc. */
  pid: number;
  stop(): Promise<void>;
}

/**
 * A private redis-server, started by the tests' spawner (test/helpers/redis-server.ts)
 * rather than through ManagedRedis, so that it is killed if the bench dies. Same settings as ManagedRedis (AOF with
 * `appendfsync always`, noeviction), so the receiver pays what it pays in production;
 * BENCH_REDIS_APPENDFSYNC=everysec measures what that durability costs.
 */
export async function startRedis(dir: string): Promise<BenchRedis> {
  const fsync = process.env.BENCH_REDIS_APPENDFSYNC;
  const server = await startRedisServer({ dir: join(dir, 'redis'), appendfsync: fsync === 'everysec' || fsync === 'always' ? fsync : MANAGED_APPENDFSYNC, readyTimeoutMs: 10_000 });
  return { url: server.url, pid: server.pid(), stop: () => stopChild(server.child()) };
}

/** Runs `fn` with a fresh temp dir and a list of closers run in reverse order afterwards, whatever happens. */
export async function withResources<T>(prefix: string, fn: (dir: string, defer: (close: () => Promise<void> | void) => void) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), `cim-bench-${prefix}-`));
  const closers: (() => Promise<void> | void)[] = [];
  try {
    return await fn(dir, (c) => closers.push(c));
  } finally {
    for (const close of closers.reverse()) {
      try {
        await close();
      } catch (err) {
        console.error(`bench cleanup: ${(err as Error).message}`);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface Backend {
  redisUrl: string;
  /** CPU time redis-server has used so far, in microseconds (from /proc). */
  redisCpuUs(): number;
  /** The BAPI simulator, in a child process (bench/sim-child.ts). */
  simUrl: string;
  simCpuUs(): number;
  /** Requests the simulator's BAPI has answered so far. */
  simRequests(): Promise<number>;
  /** Requests answered and those refused with 429 so far. */
  simStats(): Promise<{ requests: number; rateLimited: number }>;
  /** The invitations the simulator was prepared with (see SimChildInput's plan). */
  invitations: Record<string, unknown>[];
  secretKey: string;
  signingSecret: string;
  dbPath: string;
}

/**
 * A private redis-server and the BAPI simulator (no rate limit, no faults, no latency) in a
 * child process of its own, both registered with `defer`.
 */
export async function startBackend(
  dir: string,
  defer: (close: () => Promise<void> | void) => void,
  plan: SimChildInput['plan'] = { kind: 'none' },
  sim: Pick<SimChildInput, 'limits' | 'omitInvitations'> = {},
): Promise<Backend> {
  const secretKey = `sk_test_bench${randomBytes(12).toString('hex')}`;
  const signingSecret = `whsec_${randomBytes(32).toString('base64')}`;
  const redis = await startRedis(dir);
  defer(() => redis.stop());

  const child = track(
    spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'sim-child.ts')], {
      cwd: join(import.meta.dirname, '..'),
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  defer(() => stopChild(child));
  const started = await new Promise<SimChildOutput>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('simulator child did not start within 60 s')), 60_000);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`simulator child exited with ${code}`)));
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        child.stdout!.removeAllListeners('data');
        child.stdout!.resume();
        resolve(JSON.parse(out.slice(0, nl)) as SimChildOutput);
      }
    });
    child.stdin!.end(JSON.stringify({ secretKey, signingSecret, plan, ...sim } satisfies SimChildInput));
  });
  child.removeAllListeners('exit');
  child.once('exit', () => children.delete(child));

  const simStats = async () => {
    const res = await fetch(`${started.url}/_control/stats`, { headers: { authorization: `Bearer ${secretKey}` } });
    return (await res.json()) as { requests: number; rateLimited: number };
  };
  const simRequests = async () => (await simStats()).requests;
  return {
    redisUrl: redis.url,
    redisCpuUs: () => procCpuUs(redis.pid),
    simUrl: started.url,
    simCpuUs: () => procCpuUs(child.pid!),
    simRequests,
    simStats,
    invitations: started.invitations,
    secretKey,
    signingSecret,
    dbPath: join(dir, 'mirror.db'),
  };
}

export interface ServiceOpts {
  roles: Role[];
  coalesceMs?: number;
  concurrency?: number;
  /** Variables over the bench's own (BAPI_RATE_LIMIT, say). */
  env?: Record<string, string>;
}

/** The real service (silent logger, no BAPI rate limit) on `backend`, registered with `defer`. */
export async function startBenchService(backend: Backend, defer: (close: () => Promise<void> | void) => void, opts: ServiceOpts): Promise<Service> {
  const config = loadConfig({
    CLERK_SECRET_KEY: backend.secretKey,
    CLERK_WEBHOOK_SIGNING_SECRET: backend.signingSecret,
    CLERK_API_URL: backend.simUrl,
    REDIS_URL: backend.redisUrl,
    MIRROR_DB_PATH: backend.dbPath,
    PORT: '0',
    LOG_LEVEL: 'silent',
    BAPI_RATE_LIMIT: '1000000',
    ...opts.env,
  });
  const service = await startService({
    config,
    log: createLogger({ level: 'silent' }),
    roles: opts.roles,
    coalesceMs: opts.coalesceMs,
    concurrency: opts.concurrency,
    // No scheduled reconciliation: its start-up backfill would copy the simulator's
    // invitations into the mirror behind the webhooks' back and spoil every figure.
    reconcile: false,
    shutdownTimeoutMs: 5000,
  });
  defer(() => service.stop());
  return service;
}

export const webhookUrlOf = (service: Service) => `${service.url}/webhooks/clerk`;

/**
 * Runs bench/load-client.ts in a child process (so the load generator never shares the
 * service's event loop), handing it `input` on stdin (it holds the signing secret, which
 * must not show in `ps`) and returning the JSON it prints.
 */
export async function runLoadClient<T extends LoadOutput>(input: LoadInput, timeoutMs: number): Promise<T> {
  const child = track(
    spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'load-client.ts')], {
      cwd: join(import.meta.dirname, '..'),
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    const exited = new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => resolve(code));
    });
    child.stdin!.end(JSON.stringify(input));
    const code = await exited;
    if (code !== 0) throw new Error(`load client exited with ${code ?? 'a signal (timeout?)'}`);
    return JSON.parse(out.trim().split('\n').pop()!) as T;
  } finally {
    clearTimeout(timer);
    await stopChild(child);
  }
}

/** utime + stime of a process, in microseconds (Linux). */
export function procCpuUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / 100; // USER_HZ is 100 on Linux
}

/** This process's CPU time so far, in microseconds. */
export function selfCpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

export const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
