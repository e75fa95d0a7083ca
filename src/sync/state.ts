import type { MirrorConnection } from '../mirror/open.ts';

/** Keys of `sync_state`. */
export const STATE_KEYS = {
  backfillCursor: 'backfill.cursor',
  backfillLast: 'backfill.last',
  reconcileLast: 'reconcile.last',
} as const;

/**
 * JSON records in the mirror's `sync_state` table. Writes may run inside a caller's
 * transaction (better-sqlite3 nests them as savepoints), so a page of rows and the cursor
 * past it commit together.
 */
export class SyncState {
  private readonly select;
  private readonly upsert;
  private readonly remove;

  constructor(private readonly conn: MirrorConnection) {
    this.select = conn.sqlite.prepare<[string], { value: string; updated_at: number }>('SELECT value, updated_at FROM sync_state WHERE key = ?');
    this.upsert = conn.readonly
      ? undefined
      : conn.sqlite.prepare(
          'INSERT INTO sync_state (key, value, updated_at) VALUES (@key, @value, @updated_at) ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
        );
    this.remove = conn.readonly ? undefined : conn.sqlite.prepare('DELETE FROM sync_state WHERE key = ?');
  }

  get<T>(key: string): { value: T; updatedAt: number } | undefined {
    const row = this.select.get(key);
    return row && { value: JSON.parse(row.value) as T, updatedAt: row.updated_at };
  }

  set(key: string, value: unknown, now = Date.now()): void {
    if (!this.upsert) throw new Error('the mirror was opened read-only');
    this.upsert.run({ key, value: JSON.stringify(value), updated_at: now });
  }

  delete(key: string): void {
    if (!this.remove) throw new Error('the mirror was opened read-only');
    this.remove.run(key);
  }

  /** Runs `fn` in one `BEGIN IMMEDIATE` transaction (a savepoint when one is already open). */
  transaction<T>(fn: () => T): T {
    return this.conn.sqlite.transaction(fn).immediate();
  }
}

/** What the last successful reconciliation found; also what `reconcile` prints. */
export interface LastReconcile {
  /** When it finished (ms since the epoch, our clock). */
  at: number;
  report: unknown;
}

/**
 * Reader for /metrics: the time (ms since the epoch) of the last successful reconciliation,
 * or undefined when none ran against this mirror file. Works on a read-only connection and
 * sees runs made by other processes (the `reconcile` command, another host's job).
 */
export function lastReconcileAtReader(conn: MirrorConnection): () => number | undefined {
  let stmt: { get(key: string): { value: string } | undefined } | undefined;
  return () => {
    try {
      stmt ??= conn.sqlite.prepare<[string], { value: string }>('SELECT value FROM sync_state WHERE key = ?');
      const row = stmt.get(STATE_KEYS.reconcileLast);
      return row ? (JSON.parse(row.value) as LastReconcile).at : undefined;
    } catch {
      // A mirror not yet migrated to 0001 has no sync_state table: no reconciliation either.
      return undefined;
    }
  };
}
