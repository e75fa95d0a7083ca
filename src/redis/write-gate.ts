import { throttledLog, type Logger } from '../logger.ts';
import { isOutOfMemory } from './server-checks.ts';

export interface WriteGateOptions {
  /** A write of ours with a short TTL: resolves true once Redis takes it, else the cause. */
  probe: () => Promise<true | string>;
  log: Logger;
  /** Who pauses, for the log lines, e.g. 'sync worker'. */
  what: string;
  /** Called once when Redis is found refusing writes (stop fetching jobs). */
  onClosed: () => Promise<void> | void;
  /** Called once when it takes them again. */
  onOpened: () => Promise<void> | void;
  /** First and longest wait between probes. @defaultValue 250, 5000 */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** How often "still out of memory" is logged. @defaultValue 30000 */
  logEveryMs?: number;
}

/**
 * What a BullMQ consumer does when Redis is out of memory (`noeviction` at `maxmemory`).
 * BullMQ counts OOM as a command error, not a connection error, so its worker retries the job
 * fetch at once, forever, emitting an 'error' for each try; jobs that fail meanwhile cannot be
 * moved either. `report(err)` on an OOM closes the gate (`onClosed`: pause fetching), probes
 * with backoff until Redis takes a write again, and opens it (`onOpened`), with one log line
 * for each and at most one "still" line per `logEveryMs`. `whenOpen` lets a job wait for it.
 */
export class WriteGate {
  private closedSince: number | undefined;
  private waiters: (() => void)[] = [];
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private openedAt = 0;
  private lastDelayMs = 0;
  private readonly note: ReturnType<typeof throttledLog>;

  constructor(private readonly o: WriteGateOptions) {
    this.note = throttledLog(o.log, o.logEveryMs ?? 30_000);
  }

  get closed(): boolean {
    return this.closedSince !== undefined;
  }

  /** Returns whether `err` is Redis refusing writes for memory (and closes the gate if so). */
  report(err: unknown): boolean {
    if (!isOutOfMemory(err)) return false;
    if (this.closedSince !== undefined || this.stopped) return true;
    const now = Date.now();
    this.closedSince = now;
    // Memory hovering at the limit opens and closes the gate again and again: those lines are
    // throttled too, and the probes go on from the last wait instead of the shortest.
    const min = this.o.minDelayMs ?? 250;
    const delay = now - this.openedAt < 10_000 ? Math.max(min, this.lastDelayMs) : min;
    this.note('error', 'closed', { err: (err as Error).message }, `Redis is out of memory and refuses writes: the ${this.o.what} pauses until it accepts them again (free memory or raise maxmemory)`);
    void Promise.resolve(this.o.onClosed()).catch(() => {});
    this.schedule(delay);
    return true;
  }

  /** Resolves when the gate is open (at once if it is), or when the gate is stopped. */
  whenOpen(): Promise<void> {
    if (this.closedSince === undefined || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Stops probing and releases every waiter (shutdown). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const wake of this.waiters.splice(0)) wake();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.lastDelayMs = delayMs;
    this.timer = setTimeout(() => void this.tryOpen(delayMs), delayMs);
    this.timer.unref();
  }

  private async tryOpen(lastDelayMs: number): Promise<void> {
    let result: true | string;
    try {
      result = await this.o.probe();
    } catch (err) {
      result = (err as Error).message;
    }
    if (this.stopped) return;
    if (result !== true) {
      this.note('warn', 'still', { cause: result, closedForMs: Date.now() - this.closedSince! }, `Redis still refuses writes: the ${this.o.what} stays paused`);
      this.schedule(Math.min(this.o.maxDelayMs ?? 5000, lastDelayMs * 2));
      return;
    }
    const closedForMs = Date.now() - this.closedSince!;
    this.closedSince = undefined;
    this.openedAt = Date.now();
    this.note('info', 'opened', { closedForMs }, `Redis accepts writes again: the ${this.o.what} resumes`);
    for (const wake of this.waiters.splice(0)) wake();
    await Promise.resolve(this.o.onOpened()).catch(() => {});
  }
}
