import { UnrecoverableError, Worker } from 'bullmq';
import type { SyncJobData } from '../queue/job.ts';
import { SYNC_QUEUE } from '../queue/names.ts';
import type { MirrorKeys } from '../state/keys.ts';
import type { PublishedState, PublishOutcome, StatePublisher } from '../state/publisher.ts';
import type { Held, SharedState } from '../state/shared-state.ts';
import { TurnBatcher } from '../state/turn-batcher.ts';
import type { Redis } from '../redis/connection.ts';
import { throttledLog } from '../logger.ts';
import { redisWritable, writeProbeKey } from '../redis/server-checks.ts';
import { WriteGate } from '../redis/write-gate.ts';
import { jitteredBackoff, type BackoffOptions } from '../bapi/backoff.ts';
import { BapiCaller } from '../bapi/caller.ts';
import type { BapiCallerName } from '../stats.ts';
import { SharedRateLimiter } from '../bapi/rate-limiter.ts';
import { ShapeProbe } from '../maintenance/shape.ts';
import { BATCH_COUNT_WINDOW_MS, fetchOrganizationBatch } from './batch.ts';
import { refreshDerived } from './derived.ts';
import { removeOrganization } from './organization.ts';
import { createProcessor, type ProcessorDeps, type SyncResult } from './processor.ts';
import { settledWithin } from '../lifecycle/time-limit.ts';

export interface SyncWorkerOptions extends Omit<ProcessorDeps, 'publish' | 'held' | 'removeOrganization' | 'refreshDerived' | 'requestBatch' | 'fetchBatch' | 'refundBudget' | 'budget'> {
  /**
   * The shared BAPI budget (the worker limiter's key): a job that sends no request gives its
   * token back. Without it every job, a skip included, costs one.
   */
  budget?: SharedRateLimiter;
  /**
   * Queues a job (deduplicated) for work that fetches many invitations: a renamed role's
   * single re-fetches, an organization's batch. With `budget` (their list pages go through
   * it), such jobs run; without both they only log, and every invitation is fetched on its own.
   */
  enqueue?: (job: SyncJobData) => Promise<void>;
  /** Where fetched states go; the publishes of one turn's jobs share one script run. */
  publisher: StatePublisher;
  /** For the skip rule; the reads of one turn's jobs share one script run. */
  state: SharedState;
  /** A connection of its own: the worker blocks on it. */
  connection: Redis;
  keys: MirrorKeys;
  /** BAPI requests per window for every worker of this Clerk instance together (BullMQ's limiter lives in Redis). */
  rateLimit: { max: number; windowMs: number };
  /**
   * Jobs fetched at once by this process.
   * @defaultValue 8
   */
  concurrency?: number;
  backoff?: BackoffOptions;
}

/** How often one job tries its processor while Redis refuses writes for memory, before it fails as usual. */
const OOM_TRIES = 20;

/** The consumer side: a BullMQ worker running the sync processor under the global BAPI limit. */
export class SyncWorker {
  readonly worker: Worker<SyncJobData, SyncResult>;
  private readonly connection: Redis;
  /** Jobs this process is running, and who waits for none to be left. */
  private active = 0;
  private idleWaiters: (() => void)[] = [];
  /** Closed while Redis is out of memory: no job is fetched, running ones wait for it. */
  readonly writes: WriteGate;
  private closing = false;

  constructor({ connection, keys, rateLimit, concurrency = 8, backoff, publisher, state, budget, enqueue, ...deps }: SyncWorkerOptions) {
    const strategy = jitteredBackoff(backoff);
    const publishes = new TurnBatcher<PublishedState, PublishOutcome>(async (states) => (await publisher.publish(states)).outcomes);
    const holds = new TurnBatcher<{ invitationId: string; organizationId: string }, Held>((items) => state.held(items, Date.now() - BATCH_COUNT_WINDOW_MS));
    const limiter = budget ?? new SharedRateLimiter({ connection, keys, rateLimit });
    const callerFor = (caller: BapiCallerName) => budget && new BapiCaller({ limiter: budget, log: deps.log, stats: { stats: deps.stats, caller } });
    const derivedCaller = callerFor('derived');
    const batchCaller = callerFor('batch');
    // One probe per process: the organization list's item shape does not change between batches.
    const shape = batchCaller && new ShapeProbe(deps.bapi, batchCaller, deps.log, 'organization');
    const processor = createProcessor({
      ...deps,
      budget: limiter,
      publish: (s) => publishes.call(s),
      held: (item) => holds.call(item),
      removeOrganization: (organizationId, receivedAt) => removeOrganization({ state, publisher }, organizationId, receivedAt),
      refreshDerived: enqueue && derivedCaller && ((job) => refreshDerived({ state, publisher, bapi: deps.bapi, caller: derivedCaller, enqueue }, job)),
      requestBatch: enqueue && batchCaller && ((job) => enqueue(job)),
      refundBudget: budget && ((takenAt) => budget.refund(takenAt)),
      fetchBatch: batchCaller && shape && ((job) => fetchOrganizationBatch({ state, publisher, bapi: deps.bapi, caller: batchCaller, shape }, job)),
    });
    this.connection = connection;
    this.writes = new WriteGate({
      probe: () => redisWritable(connection, writeProbeKey(keys)),
      log: deps.log,
      what: 'sync worker',
      // Local only (no Redis command): the worker stops fetching, running jobs go on.
      onClosed: () => this.worker.pause(true),
      onOpened: () => (this.closing ? undefined : this.worker.resume()),
    });
    const tracked = async (job: Parameters<typeof processor>[0]) => {
      this.active++;
      try {
        // A publish Redis refused for memory is tried again once it has memory: the job
        // could not be moved to its retry meanwhile either, and its fetch is worth keeping.
        for (let tries = 1; ; tries++) {
          try {
            return await processor(job);
          } catch (err) {
            if (this.closing || tries >= OOM_TRIES || !this.writes.report(err)) throw err;
            await this.writes.whenOpen();
            if (this.closing) throw err;
          }
        }
      } finally {
        if (--this.active === 0) for (const wake of this.idleWaiters.splice(0)) wake();
      }
    };
    this.worker = new Worker<SyncJobData, SyncResult>(SYNC_QUEUE, tracked, {
      connection,
      prefix: keys.queuePrefix,
      concurrency,
      limiter: { max: rateLimit.max, duration: rateLimit.windowMs },
      settings: { backoffStrategy: (attemptsMade) => strategy(attemptsMade) },
      // A worker killed mid-job leaves it stalled; with a 15 s lock (renewed every 7.5 s) and a
      // check every 5 s another worker picks it up within about 20 s, not BullMQ's default 60.
      lockDuration: 15_000,
      stalledInterval: 5_000,
      maxStalledCount: 5,
      autorun: false,
    });
    this.worker.on('failed', (job, err) => {
      const final = err instanceof UnrecoverableError || (job !== undefined && job.attemptsMade >= (job.opts.attempts ?? 1));
      if (job && final) {
        deps.stats.jobs.failed++;
        deps.log.error({ jobId: job.id, attempts: job.attemptsMade, err: err.message }, 'sync job exhausted its attempts; see `clerk-invitation-mirror failed list`');
      }
    });
    // Repeats at every reconnection attempt while Redis is away: one line per interval.
    const note = throttledLog(deps.log);
    // Out of memory, BullMQ retries its job fetch at once, for ever, each try an 'error':
    // the gate pauses the worker instead and logs once.
    this.worker.on('error', (err) => {
      if (!this.writes.report(err)) note('error', 'worker', { err: err.message }, 'sync worker error');
    });
  }

  start(): void {
    void this.worker.run();
  }

  /**
   * Stops taking jobs, gives the active ones up to `graceMs` to finish, then closes. Jobs
   * still running then, or any while Redis does not answer (a graceful close would wait on
   * it for ever), are abandoned to BullMQ's stall recovery: another worker runs them again.
   * @returns how many jobs were abandoned
   */
  async close(graceMs = 0): Promise<number> {
    this.closing = true;
    this.writes.stop();
    if (this.connection.status === 'ready' && this.active > 0 && graceMs > 0) {
      // BullMQ's own graceful close cannot be cut short once begun, so the wait is ours.
      await this.worker.pause(true);
      await settledWithin(new Promise<void>((r) => this.idleWaiters.push(r)), graceMs);
    }
    const abandoned = this.active;
    await this.worker.close(abandoned > 0 || this.connection.status !== 'ready');
    return abandoned;
  }
}
