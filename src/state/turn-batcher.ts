/**
 * Gathers the calls of one event-loop turn and runs them as one batch at the end of it: the
 * concurrent jobs of a worker then share one Redis script run (and one round trip) instead of
 * paying one each. Each caller gets its own result; a failed batch rejects each of its calls,
 * and their jobs retry as after any failed attempt.
 */
export class TurnBatcher<In, Out> {
  private pending: { input: In; resolve: (o: Out) => void; reject: (e: unknown) => void }[] = [];
  private scheduled = false;

  /**
   * @param run runs one batch, answering one result per input, in order
   * @param maxBatch inputs per run; a longer turn is split, so one script never holds Redis
   * for long. @defaultValue 200
   */
  constructor(
    private readonly run: (inputs: In[]) => Promise<Out[]>,
    private readonly maxBatch = 200,
  ) {}

  call(input: In): Promise<Out> {
    return new Promise((resolve, reject) => {
      this.pending.push({ input, resolve, reject });
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
      this.run(batch.map((p) => p.input)).then(
        (out) => batch.forEach((p, j) => p.resolve(out[j]!)),
        (err: unknown) => batch.forEach((p) => p.reject(err)),
      );
    }
  }
}
