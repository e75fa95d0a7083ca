import { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { BapiClient } from './clerk/client.ts';
import { ConfigError, type Config } from './config.ts';
import { buildApp } from './http/app.ts';
import { readApiKeys } from './http/auth.ts';
import type { ReadinessCheck } from './http/health.ts';
import { createMetrics } from './http/metrics.ts';
import type { Logger } from './logger.ts';
import { MirrorReader } from './mirror/lookup.ts';
import { isMigrated, migrateMirror } from './mirror/migrate.ts';
import { openMirrorDb, type MirrorConnection } from './mirror/open.ts';
import { GroupCommitWriter } from './mirror/group-commit.ts';
import { MirrorWriter } from './mirror/upsert.ts';
import type { SyncJobData } from './queue/job.ts';
import { QUEUE_PREFIX } from './queue/names.ts';
import { SyncQueue } from './queue/sync-queue.ts';
import { connectRedis, type Redis } from './redis/connection.ts';
import { ManagedRedis } from './redis/managed.ts';
import { managedRedisDir } from './redis/resolve.ts';
import { PipelineStats } from './stats.ts';
import { MAINTENANCE_QUEUE, startReconcileScheduler, type Maintenance } from './sync/jobs.ts';
import { lastReconcileAtReader } from './sync/state.ts';
import { SyncWorker } from './worker/sync-worker.ts';

export const ROLES = ['receiver', 'worker', 'api'] as const;
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
   * Run the scheduled reconciliation (and background backfills) in the worker role.
   * @defaultValue true
   */
  reconcile?: boolean;
  /**
   * How long shutdown waits for active jobs before abandoning them to stall recovery.
   * @defaultValue 10000
   */
  shutdownTimeoutMs?: number;
}

export interface Service {
  app: FastifyInstance;
  /** Where it listens, e.g. http://127.0.0.1:8080 */
  url: string;
  stats: PipelineStats;
  redisUrl: string | undefined;
  mirror: MirrorConnection | undefined;
  /** Stops accepting webhooks, lets active jobs finish (bounded), closes everything. Idempotent. */
  stop(): Promise<void>;
}

/** Wires and starts the roles asked for; every resource opened is closed by `stop`, also on a failed start. */
export async function startService({ config, log, roles = ROLES, coalesceMs, concurrency, reconcile = true, shutdownTimeoutMs = 10_000 }: ServiceOptions): Promise<Service> {
  const has = (r: Role) => roles.includes(r);
  // Fail closed before opening anything: the read API never serves without a credential.
  const apiKeys = has('api') ? requireApiKeys(config) : optionalApiKeys(config);
  const stats = new PipelineStats();
  const closers: (() => Promise<void> | void)[] = [];
  const stopAll = async () => {
    for (const close of closers.splice(0).reverse()) {
      try {
        await close();
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'error while shutting down');
      }
    }
  };

  try {
    let mirror: MirrorConnection | undefined;
    if (has('worker') || has('api')) {
      mirror = openMirrorDb({ path: config.mirrorDbPath, readonly: !has('worker') });
      closers.push(() => {
        mirror!.sqlite.close();
      });
      if (has('worker')) {
        const { applied } = migrateMirror(mirror);
        if (applied) log.info({ applied }, 'mirror migrated');
      }
    }

    let redisUrl = config.redisUrl;
    const connections: Redis[] = [];
    let enqueue: ((job: SyncJobData) => Promise<void>) | undefined;
    let queue: SyncQueue | undefined;
    let maintenance: Maintenance | undefined;
    // An api-only process uses Redis (dashboard, queue depth) only when given one; it never starts its own.
    if (has('receiver') || has('worker') || redisUrl) {
      if (!redisUrl) {
        const managed = new ManagedRedis({ dir: managedRedisDir(config) });
        redisUrl = await managed.start();
        closers.push(() => managed.stop());
        log.info({ redisUrl }, 'started a private redis-server (set REDIS_URL to use your own)');
      }
      const connect = (failFast: boolean) => {
        const c = connectRedis(redisUrl!, { failFast });
        c.on('error', (err) => log.debug({ err: err.message }, 'redis connection error'));
        connections.push(c);
        return c;
      };
      closers.push(() => Promise.all(connections.map((c) => c.quit().catch(() => c.disconnect()))).then(() => {}));

      const q = new SyncQueue({ connection: connect(true), coalesceMs });
      queue = q;
      closers.push(() => q.close());
      if (has('receiver')) enqueue = (job) => q.enqueue(job);

      if (has('worker')) {
        const worker = new SyncWorker({
          connection: connect(false),
          rateLimit: config.clerk.rateLimit,
          concurrency,
          bapi: new BapiClient({ apiUrl: config.clerk.apiUrl, secretKey: config.clerk.secretKey!, timeoutMs: config.clerk.timeoutMs }),
          writer: new GroupCommitWriter(new MirrorWriter(mirror!)),
          ...consumerSide(new SyncQueue({ connection: connect(false) })),
          log,
          stats,
        });
        worker.start();
        if (reconcile) {
          const m = await startReconcileScheduler({ connection: connect(false), config, mirror: mirror!, log });
          maintenance = m;
          // Aborts a running backfill/reconciliation; its BullMQ retry resumes from the saved cursor.
          closers.push(() => m.close());
        }
        closers.push(async () => {
          let timer: NodeJS.Timeout | undefined;
          const graceful = worker.close();
          const bounded = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), shutdownTimeoutMs)));
          if ((await Promise.race([graceful, bounded])) === 'timeout') {
            log.warn('active jobs did not finish in time; they will be picked up again as stalled jobs');
            await worker.close(true);
          }
          clearTimeout(timer);
        });
      }
    }

    const readiness: Record<string, ReadinessCheck> = {};
    if (connections.length) {
      readiness.redis = async () => ((await connections[0]!.ping()) === 'PONG' ? true : 'unexpected PING answer');
    }
    if (mirror) {
      const m = mirror;
      readiness.mirror = async () => (m.sqlite.open ? (isMigrated(m) ? true : 'migrations not applied') : 'database closed');
    }

    const reader = mirror ? new MirrorReader(mirror) : undefined;
    // The dashboard shows the maintenance queue even where this process does not run it.
    const maintenanceQueue = (m: Maintenance | undefined) => {
      if (m) return m.queue;
      const q = new Queue(MAINTENANCE_QUEUE, { connection: connections[0]!, prefix: QUEUE_PREFIX });
      closers.push(() => q.close());
      return q;
    };
    const metrics = createMetrics({
      stats,
      queueCounts: queue ? () => queue.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed') : undefined,
      mirrorCounts: reader ? () => reader.statusCounts() : undefined,
      lastReconcileAt: mirror ? lastReconcileAtReader(mirror) : undefined,
    });
    const app = await buildApp({
      log,
      stats,
      readiness,
      receiver: has('receiver') && enqueue ? { signingSecret: config.clerk.webhookSigningSecret!, enqueue } : undefined,
      api: has('api') && reader ? { reader, keys: apiKeys! } : undefined,
      metrics: { metrics, keys: apiKeys },
      dashboard: queue && apiKeys ? { queues: [queue.queue, maintenanceQueue(maintenance)], keys: apiKeys } : undefined,
    });
    // Closed first on stop: no new webhooks while the rest winds down.
    closers.push(() => app.close());
    const url = await app.listen({ port: config.http.port, host: config.http.host });
    log.info({ url, roles }, 'clerk-invitation-mirror started');

    let stopping: Promise<void> | undefined;
    return { app, url, stats, redisUrl, mirror, stop: () => (stopping ??= stopAll()) };
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

/** What the worker needs of the queue: pausing it on 429, and the versions webhooks announced. */
function consumerSide(q: SyncQueue) {
  return { queue: q.queue, announced: q.announced };
}
