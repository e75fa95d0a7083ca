import { Queue } from 'bullmq';
import type { Redis } from '../redis/connection.ts';
import { WriteCoalescer } from '../redis/coalesce-writes.ts';
import { AnnouncedVersions } from './announced.ts';
import { RecentKeys } from './recent-keys.ts';
import { BATCH_WAIT_MS, isInvitationJob, syncJobKey, syncJobSchema, type SyncJobData } from './job.ts';
import { SYNC_JOB_NAME, SYNC_QUEUE } from './names.ts';
import type { MirrorKeys } from '../state/keys.ts';
import { withTimeout } from '../lifecycle/time-limit.ts';

export interface SyncQueueOptions {
  connection: Redis;
  keys: MirrorKeys;
  /**
   * Coalescing window. The first event for an invitation with nothing queued for it in the
   * last `coalesceMs` is fetched at once (leading edge); an event within the window of the
   * previous one waits `coalesceMs` and each later one restarts that wait, so a burst costs
   * the leading fetch and one after it ends (plus one if a fetch was running). Trades sync
   * lag under bursts for Clerk budget (see BENCHMARKS.md).
   * @defaultValue 200
   */
  coalesceMs?: number;
  /**
   * Attempts before a job lands in the failed set (429s do not count).
   * @defaultValue 12
   */
  attempts?: number;
  /**
   * How long an enqueue may take before the caller treats Redis as unavailable.
   * @defaultValue 3000
   */
  enqueueTimeoutMs?: number;
  /**
   * Send the commands of every enqueue made in one event-loop turn in one socket write
   * (see WriteCoalescer); off only to measure what it saves (bench/enqueue-cost.ts).
   * @defaultValue true
   */
  coalesceWrites?: boolean;
}

/**
 * The BullMQ options of a sync job: one place for them, so the benchmarks' baseline and floor
 * queue jobs exactly as the receiver does.
 */
export function syncJobOptions(job: SyncJobData, { delayMs, attempts }: { delayMs: number; attempts: number }) {
  return {
    // keepLastIfActive: never two fetches of one invitation at once, and an event that
    // arrives mid-fetch gets a fetch after it. replace: a waiting job is swapped for
    // the newest event and its delay restarts (debounce); a job already waiting without a
    // delay (the leading edge) absorbs the event: it has not fetched yet, and it checks
    // BAPI's answer against the newest announced version in Redis, not its own data. A
    // batch is not replaced: its wait runs from the first request.
    deduplication: { id: syncJobKey(job), keepLastIfActive: true, replace: job.kind !== 'batch' },
    delay: job.kind === 'batch' ? BATCH_WAIT_MS : delayMs,
    attempts,
    backoff: { type: 'jittered' },
    removeOnComplete: { age: 3600, count: 10_000 },
    removeOnFail: false,
  };
}

/** Thrown when a job could not be made durable in time; the receiver answers 503. */
export class EnqueueError extends Error {
  override name = 'EnqueueError';
}

/** The producer side of the invitation sync queue. */
export class SyncQueue {
  readonly queue: Queue<SyncJobData>;
  readonly announced: AnnouncedVersions;
  private readonly coalesceMs: number;
  private readonly attempts: number;
  private readonly enqueueTimeoutMs: number;
  private readonly writes: WriteCoalescer | undefined;
  private readonly recent: RecentKeys;

  constructor({ connection, keys, coalesceMs = 200, attempts = 12, enqueueTimeoutMs = 3000, coalesceWrites = true }: SyncQueueOptions) {
    this.queue = new Queue<SyncJobData>(SYNC_QUEUE, { connection, prefix: keys.queuePrefix });
    // Errors surface through `enqueue`; without a listener an 'error' event would crash the process.
    this.queue.on('error', () => {});
    this.announced = new AnnouncedVersions(connection, keys);
    this.writes = coalesceWrites ? new WriteCoalescer(connection) : undefined;
    this.coalesceMs = coalesceMs;
    this.recent = new RecentKeys(coalesceMs);
    this.attempts = attempts;
    this.enqueueTimeoutMs = enqueueTimeoutMs;
  }

  /**
   * Durably records that `data`'s invitation must be re-fetched. Resolves once Redis has the
   * job (or already had one waiting for that invitation); rejects with EnqueueError otherwise.
   */
  async enqueue(data: SyncJobData): Promise<void> {
    const job = syncJobSchema.parse(data);
    // Webhooks received in the same turn reach Redis in one write.
    this.writes?.hold();
    try {
      // Sent first on the same connection, so Redis raises the version before the job exists.
      const raised =
        isInvitationJob(job) && job.eventUpdatedAt !== undefined
          ? this.announced.raise(job.invitationId, job.eventUpdatedAt, { organizationId: job.organizationId, receivedAt: job.receivedAt })
          : undefined;
      await withTimeout(
        Promise.all([raised, this.queue.add(SYNC_JOB_NAME, job, syncJobOptions(job, { delayMs: this.delayFor(job), attempts: this.attempts }))]),
        this.enqueueTimeoutMs,
        () => new EnqueueError(`Redis did not accept the job within ${this.enqueueTimeoutMs} ms`),
      );
    } catch (err) {
      if (err instanceof EnqueueError) throw err;
      throw new EnqueueError(`Redis refused the job: ${(err as Error).message}`, { cause: err });
    }
  }

  /** At once for the first event of a quiet invitation, after the window for one of a burst. */
  private delayFor(job: SyncJobData): number {
    return this.coalesceMs > 0 && this.recent.touch(syncJobKey(job)) ? this.coalesceMs : 0;
  }

  /** When the oldest job ready to run (waiting or prioritized) was queued (ms since the epoch), or undefined when none is. */
  async oldestWaitingAt(): Promise<number | undefined> {
    const [oldest] = await this.queue.getJobs(['wait', 'prioritized'], 0, 0, true);
    return oldest?.timestamp;
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
