import type Database from 'better-sqlite3';
import type { MirrorConnection } from './open.ts';
import type { ListQuery } from './list-params.ts';

interface InvitationHit {
  organization_id: string;
  raw: string | null;
  deleted_at: number | null;
}

/**
 * The read side of the mirror, shared by the library and the HTTP read API. It answers with
 * the stored JSON text, so HTTP can send it byte for byte and the library can parse it once.
 */
export class MirrorReader {
  private readonly byId: Database.Statement<[string], InvitationHit>;
  private readonly listCache = new Map<string, { page: Database.Statement; count: Database.Statement }>();

  constructor(private readonly conn: MirrorConnection) {
    this.byId = conn.sqlite.prepare('SELECT organization_id, raw, deleted_at FROM organization_invitations WHERE id = ?');
  }

  /** The stored JSON of a live invitation of that organization, or undefined (miss, tombstone, other org). */
  findRaw(organizationId: string, invitationId: string): string | undefined {
    const hit = this.byId.get(invitationId);
    if (!hit || hit.deleted_at !== null || hit.organization_id !== organizationId || hit.raw === null) return undefined;
    return hit.raw;
  }

  /** Rows by status, tombstones counted as `tombstoned` (for /metrics; a full scan of the status index). */
  statusCounts(): Record<string, number> {
    const rows = this.conn.sqlite
      .prepare("SELECT CASE WHEN deleted_at IS NULL THEN status ELSE 'tombstoned' END AS status, count(*) AS n FROM organization_invitations GROUP BY 1")
      .all() as { status: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  /** One page of live invitations of an organization, and how many match in all. */
  listRaw(q: ListQuery): { rows: string[]; totalCount: number } {
    const { page, count } = this.listStatements(q);
    const args = [q.organizationId, ...q.statuses];
    const rows = (page.pluck().all(...args, q.limit, q.offset) as string[]);
    const totalCount = count.pluck().get(...args) as number;
    return { rows, totalCount };
  }

  private listStatements(q: ListQuery) {
    // Statements depend only on the shape of the query; a handful of shapes cover all calls.
    const key = `${q.statuses.length}:${q.orderBy.column}:${q.orderBy.direction}`;
    let s = this.listCache.get(key);
    if (!s) {
      const statusFilter = q.statuses.length ? ` AND status IN (${q.statuses.map(() => '?').join(', ')})` : '';
      const where = `WHERE organization_id = ? AND deleted_at IS NULL AND raw IS NOT NULL${statusFilter}`;
      const dir = q.orderBy.direction === 'desc' ? 'DESC' : 'ASC';
      s = {
        page: this.conn.sqlite.prepare(
          `SELECT raw FROM organization_invitations ${where} ORDER BY ${q.orderBy.column} ${dir}, id ${dir} LIMIT ? OFFSET ?`,
        ),
        count: this.conn.sqlite.prepare(`SELECT count(*) FROM organization_invitations ${where}`),
      };
      this.listCache.set(key, s);
    }
    return s;
  }
}
