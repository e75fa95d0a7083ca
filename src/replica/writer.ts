import type Database from 'better-sqlite3';
import { count, eq, sql } from 'drizzle-orm';
import { decodeRecords, isOrganizationId, type RawEntry, type StoredState } from '../state/codec.ts';
import type { MirrorConnection } from '../mirror/open.ts';
import { positional } from '../mirror/positional.ts';
import { organizationInvitations as inv, organizations as orgs, replicaPosition, type NewInvitationRow, type ReplicaPositionRow } from '../mirror/schema.ts';

/** Where a replica file stands in the shared state: its position row, without the row's bookkeeping. */
export type ReplicaPosition = Omit<ReplicaPositionRow, 'id' | 'updatedAt'>;

/** What applying stream entries did: how many changes, and when the receiver accepted each (for lag). */
export interface Applied {
  changes: number;
  receivedAt: number[];
}

/** Another process wrote this replica file: two replicas on one file would undo each other's changes. */
export class PositionConflictError extends Error {
  override name = 'PositionConflictError';
  constructor(path: string) {
    super(`another replica is writing ${path}: run one replica per file`);
  }
}

/**
 * How long a write transaction waits for a write lock held by another process before it
 * fails with SQLITE_BUSY (the replica then retries the batch after a pause).
 */
export const WRITE_BUSY_TIMEOUT_MS = 100;

const p = <K extends string>(k: K) => sql.placeholder(k);
const COLUMNS = ['organizationId', 'emailAddress', 'status', 'expiresAt', 'createdAt', 'updatedAt', 'confirmedAt', 'source', 'deletedAt', 'raw'] as const;

const ORGANIZATION_COLUMNS = ['confirmedAt', 'source', 'deletedAt'] as const;

/**
 * A state as the row its table's upsert takes: an invitation's in `['id', ...COLUMNS]` order,
 * an organization's (id `org_…`) in `['id', ...ORGANIZATION_COLUMNS]` order.
 */
type StateRow = [string, ...unknown[]];

function rowOf(s: StoredState): StateRow {
  const f = s.fields;
  const deletedAt = s.deleted ? s.confirmedAt : null;
  if (isOrganizationId(s.id)) return [s.id, s.confirmedAt, f.source, deletedAt];
  return [s.id, f.organizationId, f.emailAddress, f.status, f.expiresAt, f.createdAt, s.updatedAt, s.confirmedAt, f.source, deletedAt, s.raw];
}

/**
 * The replica's writes to its SQLite file, through drizzle's prepared statements. It applies
 * states as the shared state ordered them (the publish script already chose which state
 * wins), and moves the position in the same transaction.
 */
export class ReplicaWriter {
  private readonly upsert;
  private readonly upsertOrganization;
  private readonly selectPosition;
  private readonly savePosition;
  private readonly selectIds;
  private readonly deleteRow;
  private readonly countRows;
  /**
   * The position this writer last saw or committed (null: none); a different one in the file
   * means another writer. Undefined until the first `position()` read.
   */
  private committed: ReplicaPosition | null | undefined;
  /** The position the transaction under way wrote, committed with it. */
  private moved: ReplicaPosition | undefined;
  /** The writes' busy timeout, and back to the connection's own for reads. */
  private readonly shortWait: Database.Statement;
  private readonly readWait: Database.Statement;

  constructor(
    private readonly conn: MirrorConnection,
    { busyTimeoutMs = WRITE_BUSY_TIMEOUT_MS }: { busyTimeoutMs?: number } = {},
  ) {
    this.shortWait = conn.sqlite.prepare(`PRAGMA busy_timeout = ${busyTimeoutMs}`);
    this.readWait = conn.sqlite.prepare(`PRAGMA busy_timeout = ${conn.busyTimeoutMs}`);
    const db = conn.db;
    this.upsert = positional(
      conn.sqlite,
      db
        .insert(inv)
        .values({ id: p('id'), ...Object.fromEntries(COLUMNS.map((c) => [c, p(c)])) } as unknown as NewInvitationRow)
        .onConflictDoUpdate({ target: inv.id, set: Object.fromEntries(COLUMNS.map((c) => [c, sql.raw(`excluded.${inv[c].name}`)])) }),
      ['id', ...COLUMNS],
    );
    this.upsertOrganization = positional(
      conn.sqlite,
      db
        .insert(orgs)
        .values({ id: p('id'), ...Object.fromEntries(ORGANIZATION_COLUMNS.map((c) => [c, p(c)])) } as never)
        .onConflictDoUpdate({ target: orgs.id, set: Object.fromEntries(ORGANIZATION_COLUMNS.map((c) => [c, sql.raw(`excluded.${orgs[c].name}`)])) }),
      ['id', ...ORGANIZATION_COLUMNS],
    );
    this.selectPosition = db.select().from(replicaPosition).where(eq(replicaPosition.id, 1)).prepare();
    const position = {
      epoch: p('epoch'),
      streamId: p('streamId'),
      seq: p('seq'),
      carriesOlderState: p('carriesOlderState'),
      organizationsListed: p('organizationsListed'),
      updatedAt: p('updatedAt'),
    };
    this.savePosition = db
      .insert(replicaPosition)
      .values({ id: 1, ...position } as never)
      .onConflictDoUpdate({ target: replicaPosition.id, set: position as never })
      .prepare();
    this.selectIds = [db.select({ id: inv.id }).from(inv).prepare(), db.select({ id: orgs.id }).from(orgs).prepare()];
    this.deleteRow = [db.delete(inv).where(eq(inv.id, p('id'))).prepare(), db.delete(orgs).where(eq(orgs.id, p('id'))).prepare()];
    this.countRows = db.select({ n: count() }).from(inv).prepare();
  }

  get path(): string {
    return this.conn.path;
  }

  /** The file's position; the first call also makes it the one this writer expects to find. */
  position(): ReplicaPosition | undefined {
    const row = this.selectPosition.get();
    const pos = row && { epoch: row.epoch, streamId: row.streamId, seq: row.seq, carriesOlderState: row.carriesOlderState, organizationsListed: row.organizationsListed };
    if (this.committed === undefined) this.committed = pos ?? null;
    return pos;
  }

  /** Invitation rows in the file, tombstones included. */
  rowCount(): number {
    return this.countRows.get()?.n ?? 0;
  }

  /**
   * Applies `states` in order and, when given, moves the position to `to`, all in one
   * transaction.
   * @throws PositionConflictError when the file's position is not the one this writer left.
   */
  apply(states: readonly StoredState[], to?: ReplicaPosition): void {
    this.applyRows(states.map(rowOf), to);
  }

  /** Decodes the changes of `entries` and applies them in order, moving the position to `to`, in one transaction. */
  applyEntries(entries: readonly RawEntry[], to: ReplicaPosition): Applied {
    const rows: StateRow[] = [];
    const receivedAt: number[] = [];
    for (const e of entries) {
      for (const c of decodeRecords(e.streamId, e.lastSeq, e.body, e.recordsAt)) {
        rows.push(rowOf(c.state));
        if (c.receivedAt !== undefined) receivedAt.push(c.receivedAt);
      }
    }
    this.applyRows(rows, to);
    return { changes: rows.length, receivedAt };
  }

  /** `apply` for states already turned into rows (rowOf). */
  applyRows(rows: readonly StateRow[], to?: ReplicaPosition): void {
    this.transaction(() => {
      for (const r of rows) (isOrganizationId(r[0]) ? this.upsertOrganization : this.upsert).run(...r);
      if (to) this.moveTo(to);
    });
  }

  /**
   * Removes every row whose id `keep` does not hold (what the shared state does not know) and
   * moves the position, in one transaction. Returns how many rows it removed.
   */
  removeAllBut(keep: ReadonlySet<string>, to: ReplicaPosition): number {
    return this.transaction(() => {
      let removed = 0;
      this.selectIds.forEach((select, table) => {
        for (const { id } of select.all()) {
          if (!keep.has(id)) {
            this.deleteRow[table]!.run({ id });
            removed++;
          }
        }
      });
      this.moveTo(to);
      return removed;
    });
  }

  private moveTo(to: ReplicaPosition): void {
    const expected = this.committed;
    const inFile = this.position();
    if (expected !== undefined && !samePosition(inFile, expected)) throw new PositionConflictError(this.conn.path);
    this.savePosition.run({ ...to, updatedAt: Date.now() });
    // Expected from now on only once the transaction has committed: a commit that fails (a
    // full disk fails at COMMIT, when the WAL is written) leaves the file where it was.
    this.moved = { ...to };
  }

  /**
   * One write transaction. It waits at most WRITE_BUSY_TIMEOUT_MS for a write lock another
   * process holds (SQLITE_BUSY then): better-sqlite3 is synchronous, and a longer wait would
   * stall the event loop that serves webhooks and health checks; the replica retries the
   * batch later. Reads through the same connection keep the connection's own, longer timeout.
   */
  private transaction<T>(fn: () => T): T {
    if (this.conn.readonly) throw new Error('the mirror was opened read-only');
    const sqlite = this.conn.sqlite;
    this.shortWait.get();
    this.moved = undefined;
    try {
      const result = sqlite.transaction(fn).immediate();
      if (this.moved) this.committed = this.moved;
      return result;
    } finally {
      this.moved = undefined;
      if (sqlite.open) this.readWait.get();
    }
  }
}

function samePosition(a: ReplicaPosition | undefined, b: ReplicaPosition | null): boolean {
  if (!a || !b) return !a && !b;
  return a.epoch === b.epoch && a.streamId === b.streamId && a.seq === b.seq && a.carriesOlderState === b.carriesOlderState && a.organizationsListed === b.organizationsListed;
}
