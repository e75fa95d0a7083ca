import type { Logger } from '../logger.ts';
import { withTimeout } from './time-limit.ts';

/** What `Closers.closeAll` did: the closers it gave up on at the deadline, and the ones that threw. */
export interface CloseReport {
  timedOut: string[];
  failed: string[];
}

/**
 * The resources a process opened, closed in reverse order under one deadline: a close that
 * hangs (a Redis that went away, a job that never ends) is abandoned when the deadline
 * comes, and the rest still get closed, so shutdown always ends on time.
 */
export class Closers {
  private readonly list: { name: string; close: (deadlineAt: number) => Promise<void> | void }[] = [];
  private closing: Promise<CloseReport> | undefined;

  constructor(private readonly log: Logger) {}

  /** `close` receives the deadline, for closers that split their time (active jobs, then the rest). */
  add(name: string, close: (deadlineAt: number) => Promise<void> | void): void {
    this.list.push({ name, close });
  }

  /** Closes everything, last added first. Idempotent; never throws. */
  closeAll(deadlineAt: number): Promise<CloseReport> {
    this.closing ??= this.run(deadlineAt);
    return this.closing;
  }

  private async run(deadlineAt: number): Promise<CloseReport> {
    const report: CloseReport = { timedOut: [], failed: [] };
    for (const { name, close } of this.list.splice(0).reverse()) {
      // A closer past the deadline still starts: most (a SIGTERM to redis-server, a socket
      // destroyed) act at once and only their waiting is cut short.
      const left = Math.max(0, deadlineAt - Date.now());
      const outcome = await withTimeout(
        Promise.resolve()
          .then(() => close(deadlineAt))
          .then(
            () => 'closed' as const,
            (err: unknown) => {
              this.log.warn({ err: (err as Error)?.message ?? String(err), resource: name }, 'error while shutting down');
              return 'failed' as const;
            },
          ),
        left,
      ).catch(() => 'timeout' as const);
      if (outcome === 'timeout') {
        report.timedOut.push(name);
        this.log.warn({ resource: name }, 'did not close before the shutdown deadline: abandoned');
      } else if (outcome === 'failed') report.failed.push(name);
    }
    return report;
  }
}
