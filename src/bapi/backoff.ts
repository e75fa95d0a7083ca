export interface BackoffOptions {
  /** @defaultValue 1000 */
  baseMs?: number;
  /** @defaultValue 300_000 (5 min) */
  capMs?: number;
}

/**
 * Capped exponential backoff with "equal jitter": half the step is fixed, half random, so
 * retries after a Clerk outage spread out instead of arriving together.
 */
export function jitteredBackoff({ baseMs = 1000, capMs = 300_000 }: BackoffOptions = {}, random: () => number = Math.random) {
  return (attemptsMade: number): number => {
    const step = Math.min(capMs, baseMs * 2 ** Math.max(0, attemptsMade - 1));
    return Math.round(step / 2 + random() * (step / 2));
  };
}
