import { throttledLog, type Logger } from '../logger.ts';
import type { InvitationJobData } from '../queue/job.ts';
import type { SharedState } from '../state/shared-state.ts';
import { settledWithin } from '../lifecycle/time-limit.ts';

export interface ExpirySweeperOptions {
  state: SharedState;
  /** Queues a re-fetch (SyncQueue#enqueue: deduplicated with any event already waiting). */
  enqueue: (job: InvitationJobData) => Promise<void>;
  log: Logger;
  /**
   * How often due expiries are looked for.
   * @defaultValue 1000
   */
  intervalMs?: number;
  /**
   * How long after `expires_at` the re-fetch is queued, so that Clerk has expired it too.
   * @defaultValue 1000
   */
  graceMs?: number;
  /**
   * Expiries taken per Redis call.
   * @defaultValue 500
   */
  batch?: number;
  now?: () => number;
}

/**
 * Clerk sends no event when an invitation expires. Every pending invitation's `expires_at` is
 * in the shared state's expiries set (the publish script keeps it), and this takes the due
 * ones and queues a re-fetch of each, so a lookup says `expired` within seconds of Clerk,
 * whether or not Clerk moves `updated_at`. Any number of workers may run one: each expiry is
 * taken once. If the re-fetch cannot be queued (Redis trouble) the expiry goes back.
 */
export class ExpirySweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly warn: ReturnType<typeof throttledLog>;
  private readonly o: Required<Pick<ExpirySweeperOptions, 'intervalMs' | 'graceMs' | 'batch' | 'now'>> & ExpirySweeperOptions;

  constructor(options: ExpirySweeperOptions) {
    this.o = { intervalMs: 1000, graceMs: 1000, batch: 500, now: Date.now, ...options };
    this.warn = throttledLog(this.o.log, 60_000, this.o.now);
  }

  start(): void {
    this.timer ??= setInterval(() => {
      this.running ??= this.sweep().then(
        () => {},
        () => {},
      ).finally(() => (this.running = undefined));
    }, this.o.intervalMs);
    this.timer.unref();
  }

  /**
   * Stops sweeping; waits for a sweep under way, at most `waitMs`: a sweep waits on Redis, and
   * shutdown must not. One cut short between taking expiries and queueing them loses those;
   * reconciliation re-fetches pending invitations past `expires_at` anyway.
   */
  async close(waitMs = 1000): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.running) await settledWithin(this.running, waitMs);
  }

  /** Queues the re-fetch of every expiry due now; returns how many. */
  async sweep(): Promise<number> {
    const { state, enqueue, batch, graceMs, now } = this.o;
    let queued = 0;
    try {
      for (;;) {
        const due = await state.takeDueExpiries(now() - graceMs, batch);
        if (due.length === 0) break;
        try {
          await Promise.all(due.map((d) => enqueue({ ...d, receivedAt: now(), reason: 'expiry' })));
        } catch (err) {
          await state.scheduleExpiries(due, now());
          throw err;
        }
        queued += due.length;
        if (due.length < batch) break;
      }
    } catch (err) {
      this.warn('warn', 'sweep', { err: (err as Error).message }, 'could not queue the re-fetch of expiring invitations; will try again');
    }
    if (queued) this.o.log.debug({ queued }, 'queued the re-fetch of expired invitations');
    return queued;
  }
}
