// Shared pieces of the reliability scenarios: credentials, the simulator, load, the
// webhook-answer recorder, mirror-vs-truth comparison, log scanning and result files.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import Database from 'better-sqlite3';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll } from 'vitest';
import { QUEUE_PREFIX, SYNC_QUEUE } from '../../../src/queue/names.ts';
import { startSimulator, type Simulator, type SimulatorOptions } from '../../../src/simulator/index.ts';
import type { SimInvitationJSON } from '../../../src/simulator/model.ts';
import { spawnService, startRedis, type RedisProc, type ServiceEnv, type ServiceProc } from './procs.ts';

/** `npm run test:chaos` sets CHAOS=1: the same scenarios at full size, plus the soak. */
export const CHAOS = process.env.CHAOS === '1';
export const MODE = CHAOS ? 'long' : 'short';
export const scale = <T>(short: T, long: T): T => (CHAOS ? long : short);

export const RESULTS_DIR = join(import.meta.dirname, '../results');

const base62 = (n: number) => {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(randomBytes(n), (b) => abc[b % 62]).join('');
};

/** Fresh credentials per scenario, so a log scan for their exact text means something. */
export function credentials() {
  return {
    secretKey: `sk_live_${base62(40)}`,
    signingSecret: `whsec_${randomBytes(32).toString('base64')}`,
    apiKey: `mirrorkey_${base62(32)}`,
  };
}
export type Credentials = ReturnType<typeof credentials>;

/** The variables every scenario's service needs: its credentials and where Clerk, Redis and the mirror are. */
export function serviceEnv(creds: Credentials, sim: { url: string }, redis: { url: string }, dbPath: string) {
  return {
    CLERK_SECRET_KEY: creds.secretKey,
    CLERK_WEBHOOK_SIGNING_SECRET: creds.signingSecret,
    CLERK_API_URL: sim.url,
    REDIS_URL: redis.url,
    MIRROR_DB_PATH: dbPath,
    MIRROR_API_KEY: creds.apiKey,
  };
}

export function scratchDir(name: string): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), `cim-rel-${name}-`));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** What a scenario file may have started; any of it may be missing when a test failed early. */
export interface ScenarioResources {
  rec?: { restore(): void } | undefined;
  q?: { close(): Promise<void> } | undefined;
  /** Stopped in the order given. */
  services?: ({ stop(): Promise<unknown> } | undefined)[];
  sim?: { close(): Promise<void> } | undefined;
  redis?: { stop(): Promise<unknown> } | undefined;
}

/**
 * Releases a scenario's resources in the one safe order: the answer recorder, the test's queue
 * view, the services (while Redis still answers, so they exit cleanly), the simulator, Redis,
 * then the scratch directory. Call it from `afterAll` with a function that reads the
 * scenario's variables then, not when the hook is registered.
 */
export async function releaseScenario(tmp: { cleanup(): void }, r: ScenarioResources): Promise<void> {
  r.rec?.restore();
  await r.q?.close();
  for (const service of r.services ?? []) await service?.stop();
  await r.sim?.close();
  await r.redis?.stop();
  tmp.cleanup();
}

export async function startSim(creds: Credentials, opts: Partial<SimulatorOptions> = {}): Promise<Simulator> {
  return startSimulator({ secretKey: creds.secretKey, signingSecret: creds.signingSecret, rateLimit: 0, seed: 7, ...opts });
}

/**
 * One scenario file's processes: its scratch directory and credentials, then (as its test
 * starts them) a redis-server of its own, the simulator, services through the binary, and the
 * test's view of the queue and of the webhook answers. Everything is released after the file
 * (releaseScenario's order); `beforeRelease` runs first, `beforeCleanup` just before the
 * scratch directory goes.
 */
export function scenario(name: string, hooks: { beforeRelease?: () => Promise<unknown> | unknown; beforeCleanup?: () => void } = {}) {
  const tmp = scratchDir(name);
  const s = {
    tmp,
    creds: credentials(),
    /** The mirror file of the scenario's services. */
    dbPath: join(tmp.path, 'mirror.db'),
    redisDir: join(tmp.path, 'redis'),
    redis: undefined as RedisProc | undefined,
    sim: undefined as Simulator | undefined,
    /** Stopped in the order started. */
    services: [] as ServiceProc[],
    q: undefined as ReturnType<typeof queueOf> | undefined,
    rec: undefined as Recorder | undefined,
    async startRedis(opts?: Parameters<typeof startRedis>[1]): Promise<RedisProc> {
      return (s.redis = await startRedis(s.redisDir, opts));
    },
    async startSim(opts: Partial<SimulatorOptions> = {}): Promise<Simulator> {
      return (s.sim = await startSim(s.creds, opts));
    },
    /** The variables every service of the scenario gets (serviceEnv), with `extra`. */
    env(extra: Record<string, string> = {}): ServiceEnv {
      return { ...serviceEnv(s.creds, s.sim!, s.redis!, s.dbPath), ...extra };
    },
    async spawn(extra: Record<string, string> = {}, opts: { roles?: string[] } = {}): Promise<ServiceProc> {
      const service = await spawnService(s.env(extra), opts);
      s.services.push(service);
      return service;
    },
    /** The queue view and, unless told not to, the answer recorder and the simulator's webhook endpoint, all on `service`. */
    watch(service: ServiceProc, { record = true, endpoint = true } = {}): { q: ReturnType<typeof queueOf>; rec: Recorder } {
      s.q = queueOf(s.redis!.url);
      if (record) s.rec = recordWebhookAnswers(service.url);
      if (endpoint) s.sim!.delivery.addEndpoint(`${service.url}/webhooks/clerk`);
      return { q: s.q, rec: s.rec! };
    },
  };
  afterAll(async () => {
    await hooks.beforeRelease?.();
    const cleanup = () => {
      hooks.beforeCleanup?.();
      tmp.cleanup();
    };
    await releaseScenario({ cleanup }, { rec: s.rec, q: s.q, services: s.services, sim: s.sim, redis: s.redis });
  });
  return s;
}

/** A BullMQ view of the scenario's queue, from the test process. */
export function queueOf(redisUrl: string): { queue: Queue; close(): Promise<void> } {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null, retryStrategy: (t) => Math.min(100 * t, 1000) });
  connection.on('error', () => {});
  const queue = new Queue(SYNC_QUEUE, { connection, prefix: QUEUE_PREFIX });
  queue.on('error', () => {});
  return {
    queue,
    async close() {
      await queue.close().catch(() => {});
      connection.disconnect();
    },
  };
}

export async function busyJobs(queue: Queue): Promise<number> {
  const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
  return Object.values(c).reduce((a, b) => a + b, 0);
}

export interface WebhookAttempt {
  svixId: string;
  /** HTTP status, or 0 for a network error / timeout. */
  status: number;
  startedAt: number;
  endedAt: number;
  /** `data.id` and `data.updated_at` of the event. */
  invitationId: string | undefined;
  updatedAt: number | undefined;
}

/**
 * Records every webhook attempt the in-process simulator makes (it posts with the global
 * fetch), with the answer it got. Restored by `restore()`.
 */
export function recordWebhookAnswers(webhookPrefix: string) {
  const attempts: WebhookAttempt[] = [];
  const original = globalThis.fetch;
  globalThis.fetch = async (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (!url.startsWith(webhookPrefix)) return original(input, init);
    const headers = new Headers(init?.headers);
    let invitationId: string | undefined;
    let updatedAt: number | undefined;
    try {
      const data = (JSON.parse(String(init?.body)) as { data?: { id?: string; updated_at?: number } }).data;
      invitationId = data?.id;
      updatedAt = data?.updated_at;
    } catch {
      // not JSON: not one of the simulator's
    }
    const a: WebhookAttempt = { svixId: headers.get('svix-id') ?? '', status: 0, startedAt: Date.now(), endedAt: 0, invitationId, updatedAt };
    attempts.push(a);
    try {
      const res = await original(input, init);
      a.status = res.status;
      return res;
    } finally {
      a.endedAt = Date.now();
    }
  };
  return {
    attempts,
    /** svix-ids that got at least one 2xx. */
    acknowledged(): Map<string, WebhookAttempt> {
      const m = new Map<string, WebhookAttempt>();
      for (const a of attempts) if (a.status >= 200 && a.status < 300 && !m.has(a.svixId)) m.set(a.svixId, a);
      return m;
    },
    byStatus(): Record<string, number> {
      const out: Record<string, number> = {};
      for (const a of attempts) out[String(a.status)] = (out[String(a.status)] ?? 0) + 1;
      return out;
    },
    restore() {
      globalThis.fetch = original;
    },
  };
}
export type Recorder = ReturnType<typeof recordWebhookAnswers>;

export interface LoadResult {
  events: number;
  creates: number;
  transitions: number;
  touched: Set<string>;
  ms: number;
}

/**
 * Drives the simulated instance: creates invitations and accepts or revokes earlier ones,
 * `ratePerSec` events a second. Every store change makes the simulator send its webhook.
 * `onTick(done)` runs between batches, so a scenario can kill something mid-load.
 */
export async function runLoad(
  sim: Simulator,
  opts: { events: number; ratePerSec: number; organizations?: number; transitionShare?: number; onTick?: (done: number) => Promise<void> | void },
): Promise<LoadResult> {
  const { events, ratePerSec, organizations = 20, transitionShare = 0.3, onTick } = opts;
  const orgs = Array.from({ length: organizations }, (_, i) => sim.store.createOrganization({ name: `Load ${i}` }).id);
  const pending: string[] = [];
  const touched = new Set<string>();
  let done = 0;
  let creates = 0;
  let transitions = 0;
  const started = Date.now();
  const tickMs = 20;
  while (done < events) {
    const due = Math.min(events, Math.ceil(((Date.now() - started + tickMs) / 1000) * ratePerSec));
    while (done < due) {
      if (pending.length > 0 && Math.random() < transitionShare) {
        const id = pending.splice(Math.floor(Math.random() * pending.length), 1)[0]!;
        if (Math.random() < 0.7) sim.store.acceptInvitation(id);
        else sim.store.revokeInvitation(id);
        transitions++;
      } else {
        const org = orgs[creates % orgs.length]!;
        const inv = sim.store.createInvitation(org, { emailAddress: `load.${creates}.${Math.random().toString(36).slice(2, 8)}@example.com` });
        pending.push(inv.id);
        touched.add(inv.id);
        creates++;
      }
      done++;
    }
    await onTick?.(done);
    await sleep(tickMs);
  }
  return { events: done, creates, transitions, touched, ms: Date.now() - started };
}

export interface Comparison {
  checked: number;
  equal: number;
  missing: string[];
  different: string[];
  rows: number;
}

/** Every invitation in `ids` must be in the mirror with raw JSON deep-equal to the simulator's truth. */
export function compareMirror(dbPath: string, truth: SimInvitationJSON[], ids: Iterable<string>): Comparison {
  const byId = new Map(truth.map((t) => [t.id, t]));
  let db: Database.Database;
  try {
    db = new Database(dbPath, { readonly: true, fileMustExist: true });
  } catch {
    const all = [...ids];
    return { checked: all.length, equal: 0, missing: all, different: [], rows: 0 };
  }
  try {
    db.pragma('busy_timeout = 5000');
    const rows = new Map(
      (db.prepare('SELECT id, raw FROM organization_invitations WHERE deleted_at IS NULL').all() as { id: string; raw: string }[]).map((r) => [r.id, r.raw]),
    );
    const out: Comparison = { checked: 0, equal: 0, missing: [], different: [], rows: rows.size };
    for (const id of ids) {
      out.checked++;
      const raw = rows.get(id);
      const want = byId.get(id);
      if (raw === undefined) out.missing.push(id);
      else if (!want || !isDeepStrictEqual(JSON.parse(raw), want)) out.different.push(id);
      else out.equal++;
    }
    return out;
  } catch {
    const all = [...ids];
    return { checked: all.length, equal: 0, missing: all, different: [], rows: 0 };
  } finally {
    db.close();
  }
}

/**
 * Waits until the simulator has nothing left to deliver, the queue is idle and the mirror
 * equals the truth for `ids`. Returns how long that took and the last comparison.
 */
export async function waitConverged(opts: {
  sim: Simulator;
  queue: Queue;
  dbPath: string;
  ids: Iterable<string>;
  timeoutMs: number;
}): Promise<{ ms: number; comparison: Comparison; converged: boolean }> {
  const started = Date.now();
  const ids = [...opts.ids];
  let comparison: Comparison = { checked: 0, equal: 0, missing: ids, different: [], rows: 0 };
  while (Date.now() - started < opts.timeoutMs) {
    if (opts.sim.delivery.stats().pending === 0) {
      let busy = 1;
      try {
        busy = await Promise.race([busyJobs(opts.queue), sleep(2000).then(() => 1)]);
      } catch {
        busy = 1;
      }
      if (busy === 0) {
        comparison = compareMirror(opts.dbPath, opts.sim.store.truth(), ids);
        if (comparison.equal === ids.length) return { ms: Date.now() - started, comparison, converged: true };
      }
    }
    await sleep(250);
  }
  comparison = compareMirror(opts.dbPath, opts.sim.store.truth(), ids);
  return { ms: Date.now() - started, comparison, converged: comparison.equal === ids.length };
}

const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;

/** Secrets (exact text) and e-mail addresses found in captured output. */
export function scanLogs(text: string, creds: Credentials): { secrets: string[]; emails: string[]; bytes: number } {
  const secrets: string[] = [];
  for (const [name, value] of Object.entries(creds)) {
    if (text.includes(value)) secrets.push(name);
    // The base64 body of the signing secret alone is as good as the secret.
    if (name === 'signingSecret' && text.includes(value.slice('whsec_'.length))) secrets.push('signingSecret(body)');
  }
  return { secrets, emails: [...new Set(text.match(EMAIL) ?? [])].slice(0, 20), bytes: text.length };
}

/** Prints the figures and writes them to test/reliability/results/<name>.<mode>.json (gitignored). */
export function recordResult(name: string, figures: Record<string, unknown>): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const out = { scenario: name, mode: MODE, finishedAt: new Date().toISOString(), ...figures };
  writeFileSync(join(RESULTS_DIR, `${name}.${MODE}.json`), `${JSON.stringify(out, null, 2)}\n`);
  console.log(`[reliability] ${name} (${MODE}): ${JSON.stringify(figures)}`);
}

/** Duplicate deliveries seen by the receiver: 2xx answers beyond the first per svix-id. */
export function duplicateAcks(rec: Recorder): number {
  const seen = new Map<string, number>();
  for (const a of rec.attempts) if (a.status >= 200 && a.status < 300) seen.set(a.svixId, (seen.get(a.svixId) ?? 0) + 1);
  let dup = 0;
  for (const n of seen.values()) dup += n - 1;
  return dup;
}

/** Rows per id in the mirror beyond one (the primary key makes this 0; counted anyway). */
export function duplicateRows(dbPath: string): number {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT count(*) - count(DISTINCT id) AS d FROM organization_invitations').get() as { d: number }).d;
  } finally {
    db.close();
  }
}

/** Acknowledged events whose invitation the mirror file lacks, or holds at an older version than the event's. */
export function ackedNotInMirror<A extends { invitationId?: string; updatedAt?: number }>(acked: Iterable<A>, dbPath: string): A[] {
  const db = new Database(dbPath, { readonly: true });
  try {
    const version = db.prepare('SELECT updated_at FROM organization_invitations WHERE id = ? AND deleted_at IS NULL').pluck();
    return [...acked].filter((a) => {
      const v = version.get(a.invitationId) as number | undefined;
      return v === undefined || v < (a.updatedAt ?? 0);
    });
  } finally {
    db.close();
  }
}
