import type { InvitationState, PublishOutcome, StatePublisher } from './publisher.ts';

/**
 * Publishes the states of concurrent jobs together: each `publish` joins the batch of the
 * current event-loop turn, and the batch goes to Redis as one script run (in arrival order,
 * under the same rule as one by one). Each caller gets its own outcome. A failed run rejects
 * every state of its batch; their jobs retry as after any failed attempt.
 */
export class PublishBatcher {
  private pending: { state: InvitationState; resolve: (o: PublishOutcome) => void; reject: (e: unknown) => void }[] = [];
  private scheduled = false;

  /**
   * @param maxBatch states per script run; a longer batch is split, so one run never blocks
   * Redis for long. @defaultValue 200
   */
  constructor(
    private readonly publisher: StatePublisher,
    private readonly maxBatch = 200,
  ) {}

  publish(state: InvitationState): Promise<PublishOutcome> {
    return new Promise((resolve, reject) => {
      this.pending.push({ state, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    const all = this.pending;
    this.pending = [];
    this.scheduled = false;
    for (let i = 0; i < all.length; i += this.maxBatch) {
      const batch = all.slice(i, i + this.maxBatch);
      this.publisher.publish(batch.map((p) => p.state)).then(
        ({ outcomes }) => batch.forEach((p, j) => p.resolve(outcomes[j]!)),
        (err: unknown) => batch.forEach((p) => p.reject(err)),
      );
    }
  }
}
