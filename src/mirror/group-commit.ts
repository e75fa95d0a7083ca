import type { InvitationWrite, MirrorWriter, UpsertOutcome } from './upsert.ts';

/**
 * Commits the writes of concurrent jobs together. Each `write` joins the batch of the
 * current event-loop turn; at the end of the turn the batch goes to `MirrorWriter.writeMany`
 * in one transaction (the same upsert rule, applied in arrival order), and each caller gets
 * its own outcome once that transaction has committed. A commit costs SQLite far more than
 * a row (it writes every page the transaction touched), so a worker running 16 jobs at once
 * pays for one commit per turn instead of one per job. A failed transaction rejects every
 * write of its batch; their jobs retry as they would after any failed write.
 */
export class GroupCommitWriter {
  private pending: { write: InvitationWrite; resolve: (o: UpsertOutcome) => void; reject: (e: unknown) => void }[] = [];
  private scheduled = false;

  constructor(private readonly writer: MirrorWriter) {}

  /** The stored version of an invitation; writes still waiting for their commit are not seen. */
  storedVersion(id: string): ReturnType<MirrorWriter['storedVersion']> {
    return this.writer.storedVersion(id);
  }

  /** Resolves with the write's outcome once it is committed. */
  write(write: InvitationWrite): Promise<UpsertOutcome> {
    return new Promise((resolve, reject) => {
      this.pending.push({ write, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    this.scheduled = false;
    let outcomes: UpsertOutcome[];
    try {
      outcomes = this.writer.writeMany(batch.map((p) => p.write));
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => p.resolve(outcomes[i]!));
  }
}
