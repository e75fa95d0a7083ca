import { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { BapiClient } from './bapi/client.ts';
import { ConfigError, type Config } from './config.ts';
import { buildApp } from './http/app.ts';
import { readApiKeys } from './http/auth.ts';
import type { ReadinessCheck } from './http/health.ts';
import { createMetrics } from './http/metrics.ts';
import type { Logger } from './logger.ts';
import { MAINTENANCE_QUEUE, startMaintenance, type Maintenance } from './maintenance/jobs.ts';
import { lastReconcileAt } from './maintenance/reconcile.ts';
import { MirrorReader } from './mirror/reader.ts';
import { migrateMirror, mirrorReadiness } from './mirror/migrate.ts';
import { openMirrorDb, type MirrorConnection } from './mirror/open.ts';
import type { SyncJobData } from './queue/job.ts';
import { SyncQueue } from './queue/sync-queue.ts';
import { Closers } from './lifecycle/closers.ts';
import { closeRedis, connectRedis, type Redis } from './redis/connection.ts';
import { waitForRedis } from './redis/wait.ts';
import { checkRedisServer, EvictionPolicyWatch, redisWritable, writeProbeKey } from './redis/server-checks.ts';
import { ManagedRedis } from './redis/managed.ts';
import { managedRedisDir } from './redis/resolve.ts';
import { Replica } from './replica/replica.ts';
import { replicaReadiness } from './replica/status.ts';
import { mirrorKeys } from './state/keys.ts';
import { StatePublisher } from './state/publisher.ts';
import { SharedState } from './state/shared-state.ts';
import { PipelineStats } from './stats.ts';
import { BudgetWatch } from './bapi/budget-watch.ts';
import { ReadThrough } from './replica/read-through.ts';
import { SharedRateLimiter } from './bapi/rate-limiter.ts';
import { ExpirySweeper } from './worker/expiry.ts';
import { SyncWorker } from './worker/sync-worker.ts';

export const ROLES = ['receiver', 'worker', 'replica', 'api'] as const;
export type Role = (typeof ROLES)[number];

export interface ServiceOptions {
  config: Config;
  log: Logger;
  /** @defaultValue every role */
  roles?: readonly Role[];
  /** Passed to SyncQueue: events for one invitation within this window share a fetch. */
  coalesceMs?: number;
  /** Worker concurrency. */
  concurrency?: number;
  /**
   * Run maintenance in the worker role: the scheduled reconciliation and the backfill of a
   * shared state that is not filled.
   * @defaultValue true
   */
  reconcile?: boolean;
  /** How often the worker role checks whether the shared state needs a backfill. @defaultValue 15000 */
  fillCheckMs?: number;
  /**
   * How long `stop` may take in all; active jobs get all of it but the last 3 s, then are
   * abandoned to BullMQ's stall recovery.
   * @defaultValue config.shutdownTimeoutMs
   */
  shutdownTimeoutMs?: number;
  /** Aborts start-up (a signal during it): what was opened is closed and the start rejects. */
  signal?: AbortSignal;
}

/** What shutdown keeps for closing everything after active jobs: connections, files, redis-server. */
const AFTER_JOBS_MS = 3000;

export interface Service {
  app: FastifyInstance;
  /** Where it listens, e.g. http://127.0.0.1:8080 */
  url: string;
  stats: PipelineStats;
  redisUrl: string | undefined;
  /** The SQLite file of this process (the replica's, or the api role's read-only one). */
  mirror: MirrorConnection | undefined;
  replica: Replica | undefined;
  /**
   * Stops accepting webhooks, lets active jobs finish, closes everything; whatever still
   * hangs at `deadlineAt` is abandoned. Idempotent.
   * @param deadlineAt ms since the epoch. @defaultValue now + shutdownTimeoutMs
   */
  stop(deadlineAt?: number): Promise<void>;
}

/** Wires and starts the roles asked for; every resource opened is closed by `stop`, also on a failed start. */
export async function startService(o: ServiceOptions): Promise<Service> {
  const { config, log, roles = ROLES, shutdownTimeoutMs = config.shutdownTimeoutMs, signal } = o;
  const has = (r: Role) => roles.includes(r);
  // Fail closed before opening anything: the read API never serves without a credential.
  const apiKeys = has('api') ? requireApiKeys(config) : optionalApiKeys(config);
  const stats = new PipelineStats();
  const keys = mirrorKeys(config.keyPrefix);
  const closers = new Closers(log);
  const stopAll = async (deadlineAt = Date.now() + shutdownTimeoutMs) => {
    await closers.closeAll(deadlineAt);
  };

  try {
    let mirror: MirrorConnection | undefined;
    if (has('replica') || has('api')) {
      // The replica owns the file; an api role without one reads a file another process keeps.
      const m = openMirrorDb({ path: config.mirrorDbPath, readonly: !has('replica') });
      mirror = m;
      if (m.snapshot) log.warn({ path: m.path }, 'the mirror is on a read-only filesystem without its -shm file: serving a copy read into memory, read again when the file changes');
      closers.add('mirror database', () => {
        m.close();
      });
      if (has('replica')) {
        const { applied } = migrateMirror(m);
        if (applied) log.info({ applied }, 'mirror migrated');
      }
    }

    let redisUrl = config.redisUrl;
    const connections: Redis[] = [];
    let enqueue: ((job: SyncJobData) => Promise<void>) | undefined;
    let queue: SyncQueue | undefined;
    let maintenance: Maintenance | undefined;
    let replica: Replica | undefined;
    let state: SharedState | undefined;
    let budgetWatch: BudgetWatch | undefined;
    let readThrough: ReadThrough | undefined;
    if (has('api') && config.readThrough && !(has('receiver') || has('worker') || has('replica') || config.redisUrl)) {
      log.warn('READ_THROUGH=1 needs the shared state in Redis: set REDIS_URL for an api-only process; lookups answer from the mirror alone');
    }
    // An api-only process uses Redis (dashboard, queue depth) only when given one; it never starts its own.
    if (has('receiver') || has('worker') || has('replica') || redisUrl) {
      if (!redisUrl) {
        const managed = new ManagedRedis({ dir: managedRedisDir(config) });
        // Stopped last, with what is left of the deadline (it exits by itself on SIGTERM anyway).
        closers.add('redis-server', (deadlineAt) => managed.stop(Math.max(100, deadlineAt - Date.now())));
        redisUrl = await managed.start();
        log.info({ redisUrl }, 'started a private redis-server (set REDIS_URL to use your own)');
      }
      // Receivers and workers need Redis to do anything; a replica serves its file without it.
      if (has('receiver') || has('worker')) {
        await waitForRedis(redisUrl, { timeoutMs: config.redisConnectTimeoutMs, signal, log });
        // A Cluster node or an evicting Redis: one line now, not MOVED or lost jobs later.
        await checkRedisServer(redisUrl, { log, durability: has('receiver') });
      }
      signal?.throwIfAborted();
      const connect = (failFast: boolean) => {
        const c = connectRedis(redisUrl!, { failFast });
        c.on('error', (err) => log.debug({ err: err.message }, 'redis connection error'));
        connections.push(c);
        return c;
      };
      closers.add('redis connections', () => Promise.all(connections.map((c) => closeRedis(c))).then(() => {}));

      const q = new SyncQueue({ connection: connect(true), keys, coalesceMs: o.coalesceMs });
      queue = q;
      closers.add('sync queue', () => q.close());
      if (has('receiver')) enqueue = (job) => q.enqueue(job);
      const stateConnection = connect(false);
      state = new SharedState(stateConnection, keys);
      if (has('api') && config.readThrough && config.clerk.secretKey) {
        readThrough = new ReadThrough({
          bapi: new BapiClient({ apiUrl: config.clerk.apiUrl, secretKey: config.clerk.secretKey, timeoutMs: config.clerk.timeoutMs }),
          connection: stateConnection,
          keys,
          rateLimit: config.clerk.rateLimit,
          maxPerWindow: config.readThrough.maxPerWindow,
          retentionMs: config.state.retentionMs,
          log,
          stats,
        });
      }

      if (has('worker')) {
        const publisher = new StatePublisher({ connection: stateConnection, keys, retentionMs: config.state.retentionMs });
        const budget = new SharedRateLimiter({ connection: stateConnection, keys, rateLimit: config.clerk.rateLimit });
        const watch = (budgetWatch = new BudgetWatch({ limiter: budget, log }));
        watch.start();
        closers.add('budget watch', () => watch.close());
        const worker = new SyncWorker({
          connection: connect(false),
          keys,
          rateLimit: config.clerk.rateLimit,
          concurrency: o.concurrency,
          bapi: new BapiClient({ apiUrl: config.clerk.apiUrl, secretKey: config.clerk.secretKey!, timeoutMs: config.clerk.timeoutMs }),
          publisher,
          state,
          log,
          stats,
          staleReadWaitMs: config.clerk.staleReadWaitMs,
          budget,
          enqueue: (job) => q.enqueue(job),
        });
        worker.start();
        const expiries = new ExpirySweeper({ state, enqueue: (job) => q.enqueue(job), log });
        expiries.start();
        closers.add('expiry sweeper', () => expiries.close());
        if (o.reconcile ?? true) {
          const m = await startMaintenance({ connection: connect(false), config, keys, state, publisher, log, stats, fillCheckMs: o.fillCheckMs });
          maintenance = m;
          // Aborts a running backfill/reconciliation; its BullMQ retry resumes from the saved cursor.
          closers.add('maintenance worker', () => m.close());
          signal?.throwIfAborted();
        }
        closers.add('sync worker', async (deadlineAt) => {
          const abandoned = await worker.close(Math.max(0, deadlineAt - Date.now() - AFTER_JOBS_MS));
          if (abandoned) log.warn({ abandoned }, 'active jobs did not finish in time; they will be picked up again as stalled jobs');
        });
      }

      if (has('replica')) {
        // Not in `connections`: closing the replica disconnects it to end its blocking read.
        const blocking = connectRedis(redisUrl, {});
        blocking.on('error', (err) => log.debug({ err: err.message }, 'redis connection error'));
        const r = new Replica({
          redis: stateConnection,
          blocking,
          conn: mirror!,
          keys,
          log,
          onApplied: (applied, at) => stats.replicaApplied(applied.changes, applied.receivedAt.map((r) => at - r)),
          onWriteFailure: (code) => stats.replicaWriteFailed(code),
          onReopen: (change) => stats.replicaFileReopened(change),
        });
        replica = r;
        r.start();
        closers.add('replica', () => r.close());
      }
    }

    const readiness: Record<string, ReadinessCheck> = {};
    if (connections.length) {
      const c = connections[0]!;
      // Receivers and workers write: a replica, a full or an evicting Redis fails them, whatever PING says.
      const policy = has('receiver') || has('worker') ? new EvictionPolicyWatch(c, log) : undefined;
      readiness.redis = policy
        ? async () => {
            const writable = await redisWritable(c, writeProbeKey(keys));
            return writable === true ? policy.readiness() : writable;
          }
        : async () => ((await c.ping()) === 'PONG' ? true : 'unexpected PING answer');
    }
    if (maintenance) readiness.reconciliation = maintenance.readiness;
    if (mirror) {
      const m = mirror;
      // A real read through the connection, and the path still names the open file (mirror/migrate.ts).
      readiness.mirror = async () => mirrorReadiness(m);
    }
    if (replica) {
      const r = replica;
      readiness.replica = async () => replicaReadiness(await r.status(), config.replica.maxLagMs / 1000);
    }
    if (has('worker') || readThrough) {
      // Every job fails while Clerk refuses the key: not ready, whatever Redis says.
      readiness.bapi = async () => {
        const refused = stats.credentialsRefused;
        return refused ? `BAPI refuses CLERK_SECRET_KEY (${refused.status}): fix it, restart, then run \`clerk-invitation-mirror failed retry --all\`` : true;
      };
    }

    const reader = mirror ? new MirrorReader(mirror) : undefined;
    // The dashboard shows the maintenance queue even where this process does not run it.
    const maintenanceQueue = (m: Maintenance | undefined) => {
      if (m) return m.queue;
      const q = new Queue(MAINTENANCE_QUEUE, { connection: connections[0]!, prefix: keys.queuePrefix });
      closers.add('maintenance queue', () => q.close());
      return q;
    };
    const metrics = createMetrics({
      stats,
      queueCounts: queue ? () => queue.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed') : undefined,
      queueOldestAt: queue ? () => queue.oldestWaitingAt() : undefined,
      mirrorCounts: reader ? () => reader.statusCounts() : undefined,
      lastReconcileAt: state ? () => lastReconcileAt(state) : undefined,
      replicaStatus: replica ? () => replica.status() : undefined,
      budget: budgetWatch && (() => budgetWatch.last),
    });
    const app = await buildApp({
      log,
      stats,
      readiness,
      receiver: has('receiver') && enqueue ? { signingSecret: config.clerk.webhookSigningSecret!, enqueue } : undefined,
      api: has('api') && reader ? { reader, keys: apiKeys!, readThrough } : undefined,
      metrics: { metrics, keys: apiKeys },
      dashboard: queue && apiKeys ? { queues: [queue.queue, maintenanceQueue(maintenance)], keys: apiKeys, adminKeys: config.adminKey ? [config.adminKey] : [] } : undefined,
      http: { keepAliveTimeoutMs: config.httpLimits.keepAliveTimeoutMs, ...(config.httpLimits.maxConnections ? { maxConnections: config.httpLimits.maxConnections } : {}) },
    });
    // Closed first on stop: no new webhooks while the rest winds down.
    closers.add('http server', () => app.close());
    signal?.throwIfAborted();
    const url = await app.listen({ port: config.http.port, host: config.http.host });
    log.info({ url, roles }, 'clerk-invitation-mirror started');

    return { app, url, stats, redisUrl, mirror, replica, stop: (deadlineAt) => stopAll(deadlineAt) };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

function requireApiKeys(config: Config): string[] {
  try {
    return readApiKeys(config);
  } catch {
    throw new ConfigError('MIRROR_API_KEY', 'the read API (role api) needs MIRROR_API_KEY or CLERK_SECRET_KEY and does not serve without a credential');
  }
}

function optionalApiKeys(config: Config): string[] | undefined {
  try {
    return readApiKeys(config);
  } catch {
    return undefined;
  }
}
