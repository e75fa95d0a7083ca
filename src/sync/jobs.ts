import { Queue, Worker, type Job } from 'bullmq';
import { BapiClient } from '../clerk/client.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { MirrorConnection } from '../mirror/open.ts';
import { QUEUE_PREFIX } from '../queue/names.ts';
import type { Redis } from '../redis/connection.ts';
import { runBackfill, type BackfillSummary } from './backfill.ts';
import { logProgress } from './progress.ts';
import { SharedRateLimiter } from './rate-limiter.ts';
import { runReconcile, type ReconcileReport } from './reconcile.ts';
import { RunLockedError, withRunLock } from './run-lock.ts';

/** Backfill and reconciliation jobs; their BAPI calls share the sync queue's limiter. */
import { lastReconcileAtReader } from './state.ts';

export const MAINTENANCE_QUEUE = 'invitation-maintenance';
export const RECONCILE_SCHEDULER_ID = 'reconcile';

export type MaintenanceJobData = { kind: 'backfill'; restart?: boolean } | { kind: 'reconcile'; dryRun?: boolean };
export type MaintenanceResult = BackfillSummary | ReconcileReport | { skipped: string };

export interface MaintenanceOptions {
  /** A connection for the queue, the limiter and the lock; the worker duplicates it for its blocking reads. */
  connection: Redis;
  config: Config;
  /** The writable mirror the worker role opened. */
  mirror: MirrorConnection;
  log: Logger;
  /** @defaultValue a client built from `config.clerk` */
  bapi?: BapiClient;
  /** Keep the hourly reconciliation scheduled (upsertJobScheduler). @defaultValue true */
  schedule?: boolean;
}

export interface Maintenance {
  queue: Queue<MaintenanceJobData, MaintenanceResult>;
  /** Queues a backfill to run in the background (resumes a saved cursor unless `restart`). */
  enqueueBackfill(opts?: { restart?: boolean }): Promise<void>;
  /** Stops the worker (aborting a running backfill/reconciliation, whose job is retried later). */
  close(): Promise<void>;
}

/**
 * Keeps the reconciliation scheduled every `config.reconcile.intervalMs` (BullMQ job
 * scheduler: one schedule for all hosts, whichever upserts it last) and runs maintenance
 * jobs, one at a time per process and per kind across processes (Redis lock). A failed or
 * interrupted backfill job is retried by BullMQ and resumes from its saved cursor.
 */
export async function startReconcileScheduler(o: MaintenanceOptions): Promise<Maintenance> {
  const { config, log, mirror } = o;
  const bapi = o.bapi ?? new BapiClient({ apiUrl: config.clerk.apiUrl, secretKey: config.clerk.secretKey!, timeoutMs: config.clerk.timeoutMs });
  const limiter = new SharedRateLimiter({ connection: o.connection, rateLimit: config.clerk.rateLimit });
  const queue = new Queue<MaintenanceJobData, MaintenanceResult>(MAINTENANCE_QUEUE, { connection: o.connection, prefix: QUEUE_PREFIX });
  queue.on('error', (err) => log.warn({ err: err.message }, 'maintenance queue error'));
  const running = new AbortController();

  const process = async (job: Job<MaintenanceJobData, MaintenanceResult>): Promise<MaintenanceResult> => {
    const data = job.data;
    const kind = data.kind === 'backfill' ? 'backfill' : 'reconcile';
    const jobLog = log.child({ job: job.id, kind });
    try {
      return await withRunLock(o.connection, kind, async () => {
        const common = { conn: mirror, bapi, limiter, log: jobLog, signal: running.signal, progress: logProgress(jobLog, { label: kind, everyMs: 30_000 }) };
        if (data.kind === 'backfill') {
          const s = await runBackfill({ ...common, restart: data.restart });
          if (s.status !== 'completed') throw new Error(`backfill ${s.status}${s.error ? `: ${s.error}` : ''}; it resumes from its cursor on the next attempt`);
          return s;
        }
        const r = await runReconcile({ ...common, dryRun: data.dryRun, maxAgeMs: config.reconcile.maxAgeMs });
        if (r.status !== 'completed') throw new Error(`reconciliation ${r.status}${r.error ? `: ${r.error}` : ''}`);
        return r;
      });
    } catch (err) {
      // A scheduled run that finds another one running has nothing to add.
      if (err instanceof RunLockedError && kind === 'reconcile') {
        jobLog.info(err.message);
        return { skipped: err.message };
      }
      throw err;
    }
  };

  const workerConnection = o.connection.duplicate({ maxRetriesPerRequest: null });
  const worker = new Worker<MaintenanceJobData, MaintenanceResult>(MAINTENANCE_QUEUE, process, {
    connection: workerConnection,
    prefix: QUEUE_PREFIX,
    concurrency: 1,
    autorun: false,
  });
  worker.on('error', (err) => log.error({ err: err.message }, 'maintenance worker error'));
  worker.on('failed', (job, err) => log.warn({ job: job?.id, kind: job?.data.kind, attempts: job?.attemptsMade, err: err.message }, 'maintenance job failed'));

  try {
    if ((o.schedule ?? true) && config.reconcile.intervalMs === 0) {
      // One schedule serves every host: turning it off here turns it off for all of them.
      await queue.removeJobScheduler(RECONCILE_SCHEDULER_ID);
    } else if (o.schedule ?? true) {
      // Restarts must not each cost a full pass: the next run is due one interval after the
      // last successful one (at once when there was none, or it is overdue).
      const last = lastReconcileAtReader(mirror)();
      // A recorded time ahead of our clock (a skewed host) must not postpone the schedule.
      const due = last === undefined ? undefined : Math.min(last, Date.now()) + config.reconcile.intervalMs;
      await queue.upsertJobScheduler(
        RECONCILE_SCHEDULER_ID,
        { every: config.reconcile.intervalMs, ...(due !== undefined && due > Date.now() ? { startDate: due } : {}) },
        { name: 'reconcile', data: { kind: 'reconcile' }, opts: { removeOnComplete: 100, removeOnFail: 100 } },
      );
    }
  } catch (err) {
    await Promise.allSettled([queue.close(), worker.close(true)]);
    workerConnection.disconnect();
    throw err;
  }
  void worker.run();

  let closing: Promise<void> | undefined;
  return {
    queue,
    async enqueueBackfill({ restart = false } = {}) {
      await queue.add('backfill', { kind: 'backfill', restart }, {
        // Resumable, so retries lose nothing; spaced out while Clerk or Redis recovers.
        attempts: 20,
        backoff: { type: 'exponential', delay: 10_000 },
        deduplication: { id: 'backfill' },
        removeOnComplete: 100,
        removeOnFail: 100,
      });
    },
    close() {
      closing ??= (async () => {
        running.abort(new Error('shutting down'));
        await worker.close().catch(() => {});
        await queue.close().catch(() => {});
        await workerConnection.quit().catch(() => workerConnection.disconnect());
      })();
      return closing;
    },
  };
}
