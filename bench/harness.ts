// Shared plumbing of the pipeline benchmarks: a private redis-server, the simulator, the
// service (silent), a child process that generates load, and cleanup of all of it even when
// a benchmark throws half-way.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { freePort } from '../src/redis/managed.ts';
import { startService, type Role, type Service } from '../src/service.ts';
import { startSimulator, type Simulator } from '../src/simulator/index.ts';

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
  stop(): Promise<void>;
}

/**
 * A private redis-server, spawned here rather than through ManagedRedis so that the exit
 * hook above can kill it if the bench dies. Same settings as ManagedRedis (AOF with fsync
 * every second, noeviction), so the receiver pays what it pays in production.
 */
export async function startRedis(dir: string): Promise<BenchRedis> {
  const port = await freePort();
  const dataDir = join(dir, 'redis');
  mkdirSync(dataDir, { recursive: true });
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dataDir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--maxmemory-policy', 'noeviction', '--protected-mode', 'yes'];
  const child = track(spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  let output = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${output.slice(-300)}`)), 10_000);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with code ${code}: ${output.slice(-300)}`));
      });
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    });
  } catch (err) {
    await stopChild(child);
    throw err;
  }
  child.removeAllListeners('exit');
  child.once('exit', () => children.delete(child));
  return { url: `redis://127.0.0.1:${port}`, stop: () => stopChild(child) };
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

export interface Stack {
  redisUrl: string;
  sim: Simulator;
  service: Service;
  dbPath: string;
  signingSecret: string;
  webhookUrl: string;
}

export interface StackOptions {
  roles: Role[];
  coalesceMs?: number;
  concurrency?: number;
  /** Seeded before the service starts; no webhooks are sent for them. */
  seed?: { organizations: number; invitationsPerOrganization: number };
}

/** Redis, simulator (no rate limit, no faults) and service, all registered with `defer`. */
export async function startStack(dir: string, defer: (close: () => Promise<void> | void) => void, opts: StackOptions): Promise<Stack> {
  const secretKey = `sk_test_bench${randomBytes(12).toString('hex')}`;
  const signingSecret = `whsec_${randomBytes(32).toString('base64')}`;
  const redis = await startRedis(dir);
  defer(() => redis.stop());
  const sim = await startSimulator({ secretKey, signingSecret, rateLimit: 0 });
  defer(() => sim.close());
  if (opts.seed) sim.store.seed(opts.seed);
  const dbPath = join(dir, 'mirror.db');
  const config = loadConfig({
    CLERK_SECRET_KEY: secretKey,
    CLERK_WEBHOOK_SIGNING_SECRET: signingSecret,
    CLERK_API_URL: sim.url,
    REDIS_URL: redis.url,
    MIRROR_DB_PATH: dbPath,
    PORT: '0',
    LOG_LEVEL: 'silent',
    BAPI_RATE_LIMIT: '1000000',
  });
  const service = await startService({
    config,
    log: createLogger({ level: 'silent' }),
    roles: opts.roles,
    coalesceMs: opts.coalesceMs,
    concurrency: opts.concurrency,
    shutdownTimeoutMs: 5000,
  });
  defer(() => service.stop());
  return { redisUrl: redis.url, sim, service, dbPath, signingSecret, webhookUrl: `${service.url}/webhooks/clerk` };
}

/** Clerk's event envelope around `data`, as the simulator's delivery sends it. */
export function envelope(type: string, data: unknown): string {
  return JSON.stringify({
    data,
    object: 'event',
    type,
    timestamp: Date.now(),
    instance_id: 'ins_2benchInstance0000000000000',
    event_attributes: { http_request: { client_ip: '192.0.2.10', user_agent: '@clerk/backend@3.25.0' } },
  });
}

/**
 * Runs bench/load-client.ts in a child process (so the load generator never shares the
 * service's event loop), handing it `input` on stdin (it holds the signing secret, which
 * must not show in `ps`) and returning the JSON it prints.
 */
export async function runLoadClient<T>(input: object, timeoutMs: number): Promise<T> {
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

export const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
