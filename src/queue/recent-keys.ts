/**
 * The job keys this process queued within the last `windowMs`, oldest first, forgotten as
 * they age. It tells the first event of a quiet invitation (fetch at once) from one of a
 * burst (coalesce). It is a hint about Redis, never the truth: a key another receiver
 * queued, or one forgotten early, costs at most one extra fetch, and every event still
 * gets a fetch after it.
 */
export class RecentKeys {
  private readonly at = new Map<string, number>();

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether `key` was queued within the window; notes this time for it either way. */
  touch(key: string): boolean {
    const t = this.now();
    // A Map iterates in insertion order and every touch re-inserts: the oldest come first.
    for (const [k, when] of this.at) {
      if (t - when < this.windowMs) break;
      this.at.delete(k);
    }
    const last = this.at.get(key);
    this.at.delete(key);
    this.at.set(key, t);
    return last !== undefined;
  }

  get size(): number {
    return this.at.size;
  }
}
