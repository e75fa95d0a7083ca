export interface RateWindow {
  /** Simulator-clock time of the window's first request. */
  startedAt: number;
  /** Requests let through in this window: never more than the limit. */
  accepted: number;
  /** Requests answered 429 in this window. */
  refused: number;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

const HISTORY = 1_000;

/**
 * One fixed window per instance, opened by the first request after the previous window
 * ended (the INCR-plus-EXPIRE scheme most API gateways use, and BullMQ's limiter too).
 * Refused requests are counted but never extend the window, so a client hammering through
 * a 429 is unblocked exactly when the window it hit ends.
 */
export class RateLimiter {
  private readonly history: RateWindow[] = [];
  private current: RateWindow | undefined;

  constructor(
    private limit: number,
    private windowMs: number,
    private readonly now: () => number,
  ) {
    this.configure(limit, windowMs);
  }

  /** `limit` 0 or Infinity lets everything through (windows are still counted). */
  configure(limit: number, windowMs: number): void {
    if (!(limit >= 0)) throw new RangeError('rateLimit must be 0 (no limit), a positive number or Infinity');
    if (!(windowMs > 0 && Number.isFinite(windowMs))) throw new RangeError('rateWindowMs must be a positive number of milliseconds');
    this.limit = limit === 0 ? Infinity : limit;
    this.windowMs = windowMs;
  }

  get settings(): { limit: number; windowMs: number } {
    return { limit: this.limit, windowMs: this.windowMs };
  }

  check(): RateDecision {
    const now = this.now();
    let w = this.current;
    if (!w || now >= w.startedAt + this.windowMs) {
      w = { startedAt: now, accepted: 0, refused: 0 };
      this.current = w;
      this.history.push(w);
      if (this.history.length > HISTORY) this.history.shift();
    }
    if (w.accepted < this.limit) {
      w.accepted++;
      return { ok: true };
    }
    w.refused++;
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((w.startedAt + this.windowMs - now) / 1000)) };
  }

  /** The most recent windows (up to 1000), oldest first. */
  windows(): RateWindow[] {
    return this.history.map((w) => ({ ...w }));
  }

  /** Forgets the counted history; the window in progress keeps counting against the limit. */
  resetHistory(): void {
    this.history.length = 0;
    if (this.current) this.history.push(this.current);
  }
}
