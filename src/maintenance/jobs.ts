import { Queue, Worker, type Job } from 'bullmq';
import { BapiClient } from '../bapi/client.ts';
import type { Config } from '../config.ts';
import type { PipelineStats } from '../stats.ts';
import { throttledLog, type Logger } from '../logger.ts';
import { closeRedis, type Redis } from '../redis/connection.ts';
import { redisWritable, writeProbeKey } from '../redis/server-checks.ts';
import { WriteGate } from '../redis/write-gate.ts';
import type { MirrorKeys } from '../state/keys.ts';
import type { StatePublisher } from '../state/publisher.ts';
import type { SharedState } from '../state/shared-state.ts';
import { runBackfill, type BackfillSummary } from './backfill.ts';
import { logProgress } from './progress.ts';
import { SharedRateLimiter } from '../bapi/rate-limiter.ts';
import { lastReconcileAt, runReconcile, type ReconcileReport } from './reconcile.ts';
import { RunLockedError, withRunLock } from './run-lock.ts';

/** Backfill and reconciliation jobs; their BAPI calls share the sync queue's limiter. */
export const MAINTENANCE_QUEUE = 'invitation-maintenance';
export const RECONCILE_SCHEDULER_ID = 'reconcile';
const BACKFILL_JOB_ID = 'backfill';

export type MaintenanceJobData = { kind: 'backfill' } | { kind: 'reconcile'; dryRun?: boolean };
export type MaintenanceResult = BackfillSummary | ReconcileReport | { skipped: string };

export interface MaintenanceOptions {
  /** A connection for the queue, the limiter and the lock; the worker duplicates it for its blocking reads. */
  connection: Redis;
  config: Config;
  keys: MirrorKeys;
  state: SharedState;
  publisher: StatePublisher;
  log: Logger;
  /** @defaultValue a client built from `config.clerk` */
  bapi?: BapiClient;
  /**
   * Automatic maintenance: keep the reconciliation scheduled, and queue a backfill whenever
   * the shared state is found not filled (a fresh install, an upgrade, Redis lost its data).
   * Off when `config.reconcile.intervalMs` is 0. @defaultValue true
   */
  schedule?: boolean;
  /** How often the state is checked for needing a backfill. @defaultValue 15000 */
  fillCheckMs?: number;
  /** Where the runs' BAPI requests are counted (`/metrics`). */
  stats?: PipelineStats;
}

export interface Maintenance {
  queue: Queue<MaintenanceJobData, MaintenanceResult>;
  /**
   * `/readyz` of the worker role: fails when automatic maintenance is on, the state was filled
   * longer ago than `RECONCILE_OVERDUE_INTERVALS` intervals and no reconciliation has succeeded
   * within that time either.
   */
  readiness(): Promise<true | string>;
  /** Stops the worker (aborting a running backfill/reconciliation, whose job is retried later). */
  close(): Promise<void>;
}

/**
 * A reconciliation is overdue after this many intervals without a successful one (the first
 * runs one interval after the backfill; two more give a failed or slow run time to retry).
 * ops/prometheus-alerts.yml's ClerkMirrorReconciliationOverdue uses the same rule for the
 * default hourly interval (3 h).
 */
export const RECONCILE_OVERDUE_INTERVALS = 3;

/** Why a reconciliation is overdue, or true; `now` and the times in ms since the epoch. */
export function reconcileOverdue({ intervalMs, filledAt, lastAt, now }: { intervalMs: number; filledAt: number | undefined; lastAt: number | undefined; now: number }): true | string {
  const limitMs = RECONCILE_OVERDUE_INTERVALS * intervalMs;
  // Not filled yet (a backfill is due), or filled recently: nothing to be overdue yet.
  if (intervalMs <= 0 || filledAt === undefined || now - filledAt <= limitMs) return true;
  if (lastAt !== undefined && now - lastAt <= limitMs) return true;
  const since = lastAt === undefined ? 'no reconciliation has succeeded' : `the last successful reconciliation was ${Math.round((now - lastAt) / 60_000)} min ago`;
  return `reconciliation overdue: ${since}, more than ${RECONCILE_OVERDUE_INTERVALS} × RECONCILE_INTERVAL_MS (${Math.round(limitMs / 60_000)} min); see the maintenance job's failures (\`clerk-invitation-mirror failed list\`, /admin/queues)`;
}

/**
 * Runs maintenance jobs, one at a time per process and per kind across processes (Redis
 * lock), and keeps them coming: the reconciliation every `config.reconcile.intervalMs`
 * (BullMQ job scheduler: one schedule for all hosts), and a backfill whenever the shared
 * state has not been filled. A failed or interrupted backfill is retried by BullMQ and
 * resumes from its saved cursor.
 */
export async function startMaintenance(o: MaintenanceOptions): Promise<Maintenance> {
  const { config, log, keys, state } = o;
  const bapi = o.bapi ?? new BapiClient({ apiUrl: config.clerk.apiUrl, secretKey: config.clerk.secretKey!, timeoutMs: config.clerk.timeoutMs });
  const limiter = new SharedRateLimiter({ connection: o.connection, keys, rateLimit: config.clerk.rateLimit });
  const queue = new Queue<MaintenanceJobData, MaintenanceResult>(MAINTENANCE_QUEUE, { connection: o.connection, prefix: keys.queuePrefix });
  // While Redis is away these repeat at every reconnection attempt: one line per interval.
  const note = throttledLog(log);
  queue.on('error', (err) => note('warn', 'queue', { err: err.message }, 'maintenance queue error'));
  const running = new AbortController();
  const automatic = (o.schedule ?? true) && config.reconcile.intervalMs > 0;

  const process = async (job: Job<MaintenanceJobData, MaintenanceResult>): Promise<MaintenanceResult> => {
    const data = job.data;
    const kind = data.kind === 'backfill' ? 'backfill' : 'reconcile';
    const jobLog = log.child({ job: job.id, kind });
    try {
      return await withRunLock(o.connection, keys, kind, async () => {
        const common = { state, publisher: o.publisher, bapi, limiter, stats: o.stats, log: jobLog, signal: running.signal, progress: logProgress(jobLog, { label: kind, everyMs: 30_000 }) };
        if (data.kind === 'backfill') {
          const s = await runBackfill(common);
          if (s.status !== 'completed') throw new Error(`backfill ${s.status}${s.error ? `: ${s.error}` : ''}; it resumes from its cursor on the next attempt`);
          return s;
        }
        const r = await runReconcile({ ...common, dryRun: data.dryRun, maxAgeMs: config.reconcile.maxAgeMs });
        o.stats?.driftFound(r.drift);
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
    prefix: keys.queuePrefix,
    concurrency: 1,
    autorun: false,
  });
  // Out of memory, BullMQ's worker retries its fetch at once for ever: pause it instead (write-gate.ts).
  const writes = new WriteGate({
    probe: () => redisWritable(o.connection, writeProbeKey(keys)),
    log,
    what: 'maintenance worker',
    onClosed: () => worker.pause(true),
    onOpened: () => (running.signal.aborted ? undefined : worker.resume()),
  });
  worker.on('error', (err) => {
    if (!writes.report(err)) note('error', 'worker', { err: err.message }, 'maintenance worker error');
  });
  worker.on('failed', (job, err) => log.warn({ job: job?.id, kind: job?.data.kind, attempts: job?.attemptsMade, err: err.message }, 'maintenance job failed'));

  /** Queues a backfill (it resumes a saved cursor); one at a time. */
  const enqueueBackfill = async () => {
    await queue.add('backfill', { kind: 'backfill' }, {
      // Resumable, so retries lose nothing; spaced out while Clerk or Redis recovers.
      attempts: 20,
      backoff: { type: 'exponential', delay: 10_000 },
      deduplication: { id: BACKFILL_JOB_ID },
      removeOnComplete: 100,
      removeOnFail: 100,
    });
  };

  /** Queues a backfill when the state lacks one; returns whether it did. */
  const fillIfNeeded = async (): Promise<boolean> => {
    const meta = await state.ensure();
    if (meta.filledAt !== undefined) return false;
    await enqueueBackfill();
    return true;
  };

  /** Creates or updates the one reconciliation schedule; `backfilling`: a backfill queued now is the first pass. */
  const schedule = async (backfilling: boolean) => {
    // Restarts must not each cost a full pass: the next run is due one interval after the
    // last successful one (at once when there was none, or it is overdue).
    const last = backfilling ? Date.now() : await lastReconcileAt(state);
    // A recorded time ahead of our clock (a skewed host) must not postpone the schedule.
    const due = last === undefined ? undefined : Math.min(last, Date.now()) + config.reconcile.intervalMs;
    await queue.upsertJobScheduler(
      RECONCILE_SCHEDULER_ID,
      { every: config.reconcile.intervalMs, ...(due !== undefined && due > Date.now() ? { startDate: due } : {}) },
      { name: 'reconcile', data: { kind: 'reconcile' }, opts: { removeOnComplete: 100, removeOnFail: 100 } },
    );
  };

  try {
    if ((o.schedule ?? true) && !automatic) {
      // One schedule serves every host: turning it off here turns it off for all of them.
      await queue.removeJobScheduler(RECONCILE_SCHEDULER_ID);
    } else if (automatic) {
      const backfilling = await fillIfNeeded();
      if (backfilling) log.info('the shared state has not been filled: a backfill is queued');
      await schedule(backfilling);
    }
  } catch (err) {
    await Promise.allSettled([queue.close(), worker.close(true)]);
    workerConnection.disconnect();
    throw err;
  }
  void worker.run();

  // Redis may lose the state while we run (a flush, a new empty Redis, a restart without
  // persistence): fill it again, and put the schedule back (only a starting worker makes it).
  const warnCheck = (err: unknown) => note('warn', 'check', { err: (err as Error).message }, 'cannot check the shared state and the reconciliation schedule');
  const check = async () => {
    if (writes.closed) return;
    const queued = await fillIfNeeded();
    if (queued) log.warn('the shared state is not filled (did Redis lose its data?): a backfill is queued');
    if (!(await queue.getJobScheduler(RECONCILE_SCHEDULER_ID))) {
      await schedule(queued);
      log.warn({ everyMs: config.reconcile.intervalMs }, 'the reconciliation schedule was missing in Redis (did Redis lose its data?): re-created');
    }
  };
  const timer = automatic ? setInterval(() => void check().catch(warnCheck), o.fillCheckMs ?? 15_000) : undefined;
  timer?.unref();

  const readiness = async (): Promise<true | string> => {
    if (!automatic) return true;
    const [meta, lastAt] = await Promise.all([state.meta(), lastReconcileAt(state)]);
    return reconcileOverdue({ intervalMs: config.reconcile.intervalMs, filledAt: meta?.filledAt, lastAt, now: Date.now() });
  };

  let closing: Promise<void> | undefined;
  return {
    queue,
    readiness,
    close() {
      closing ??= (async () => {
        clearInterval(timer);
        writes.stop();
        running.abort(new Error('shutting down'));
        // An aborted run ends at its next step; with Redis away a graceful close would wait
        // on it for ever, so it is cut short (the job's retry resumes from its cursor).
        await worker.close(workerConnection.status !== 'ready').catch(() => {});
        await queue.close().catch(() => {});
        await closeRedis(workerConnection);
      })();
      return closing;
    },
  };
}
