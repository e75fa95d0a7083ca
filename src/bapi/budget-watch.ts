import { throttledLog, type Logger } from '../logger.ts';
import type { SharedRateLimiter } from './rate-limiter.ts';

export interface BudgetWatchOptions {
  limiter: SharedRateLimiter;
  log: Logger;
  /** How often the budget is looked at. @defaultValue 5000 */
  everyMs?: number;
  /** How long it must stay spent before a warning. @defaultValue 60_000 */
  warnAfterMs?: number;
  now?: () => number;
}

/**
 * Watches the shared BAPI budget and warns (at most once a minute) while the mirror has had
 * its whole share spent for longer than `warnAfterMs`: webhooks then wait for tokens, so the
 * share is too small for the traffic (or a 429 keeps everyone paused).
 */
export class BudgetWatch {
  private timer: NodeJS.Timeout | undefined;
  private spentSince: number | undefined;
  /** The last look: what `/metrics` shows. */
  last: { spent: number; max: number; blocked: boolean; spentForMs: number } | undefined;
  private readonly warn;

  constructor(private readonly o: BudgetWatchOptions) {
    this.warn = throttledLog(o.log, 60_000, o.now);
  }

  start(): void {
    if (this.timer) return;
    const look = () =>
      void this.check().catch((err: unknown) => {
        // Not a frozen reading: the gauges go away until Redis answers again.
        this.last = undefined;
        this.warn('warn', 'budget-read', { err: (err as Error).message }, 'cannot read the shared BAPI budget from Redis');
      });
    look();
    this.timer = setInterval(look, this.o.everyMs ?? 5000);
    this.timer.unref();
  }

  /** One look (what the timer does). */
  async check(): Promise<void> {
    const u = await this.o.limiter.usage();
    // After the read: a slow read overtaken by the next look must not date the streak later than now.
    const now = (this.o.now ?? Date.now)();
    const spent = u.blocked || u.spent >= u.max;
    this.spentSince = spent ? (this.spentSince ?? now) : undefined;
    const spentForMs = this.spentSince === undefined ? 0 : Math.max(0, now - this.spentSince);
    this.last = { ...u, spentForMs };
    if (spentForMs >= (this.o.warnAfterMs ?? 60_000)) {
      this.warn(
        'warn',
        'budget',
        { spentForS: Math.round(spentForMs / 1000), max: u.max, blockedBy429: u.blocked },
        'the mirror has spent its whole BAPI share for over a minute: changes wait for tokens (raise BAPI_RATE_LIMIT, or see clerk_mirror_bapi_requests_total for who spends it)',
      );
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
