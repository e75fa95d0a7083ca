import { and, asc, count, desc, eq, inArray, isNotNull, isNull, sql } from 'drizzle-orm';
import type { SQLiteColumn } from 'drizzle-orm/sqlite-core';
import type { MirrorConnection } from './open.ts';
import { positionalSelect } from './positional.ts';
import type { ListQuery, OrderField } from './list-params.ts';
import { organizationInvitations as inv, organizations as orgs, replicaPosition } from './schema.ts';

const ORDER_COLUMNS: Record<OrderField, SQLiteColumn> = { created_at: inv.createdAt, email_address: inv.emailAddress };

/**
 * The read side of the mirror, shared by the library and the HTTP read API. It answers with
 * the stored JSON text, so HTTP can send it byte for byte and the library can parse it once.
 */
export class MirrorReader {
  private byId!: ReturnType<MirrorReader['prepareById']>;
  private readonly listCache = new Map<string, ListStatements>();
  private organization!: ReturnType<MirrorReader['prepareOrganization']>;
  private organizationsListed!: ReturnType<MirrorReader['prepareOrganizationsListed']>;
  private anyLiveInvitation!: ReturnType<MirrorReader['prepareAnyLiveInvitation']>;

  constructor(private readonly conn: MirrorConnection) {
    this.prepare();
    // A file opened again (replaced, or recreated by the replica): the statements of the old
    // handle are dead. Prepared once per reopen, never checked per lookup.
    conn.onReopen(() => this.prepare());
  }

  private prepare(): void {
    this.byId = this.prepareById();
    this.organization = this.prepareOrganization();
    this.organizationsListed = this.prepareOrganizationsListed();
    this.anyLiveInvitation = this.prepareAnyLiveInvitation();
    this.listCache.clear();
  }

  /** Every lookup runs it: prepared on better-sqlite3 itself, without drizzle's per-call mapping (positional.ts). */
  private prepareById() {
    const query = this.conn.db.select({ organization_id: inv.organizationId, raw: inv.raw, deleted_at: inv.deletedAt }).from(inv).where(eq(inv.id, sql.placeholder('id')));
    return positionalSelect(this.conn.sqlite, query, ['id']);
  }

  private prepareOrganization() {
    return this.conn.db.select({ deletedAt: orgs.deletedAt }).from(orgs).where(eq(orgs.id, sql.placeholder('id'))).prepare();
  }

  private prepareOrganizationsListed() {
    return this.conn.db.select({ listed: replicaPosition.organizationsListed }).from(replicaPosition).where(eq(replicaPosition.id, 1)).prepare();
  }

  private prepareAnyLiveInvitation() {
    return this.conn.db
      .select({ id: inv.id })
      .from(inv)
      .where(and(eq(inv.organizationId, sql.placeholder('id')), isNull(inv.deletedAt), isNotNull(inv.raw)))
      .limit(1)
      .prepare();
  }

  /**
   * Whether BAPI would answer "Given organization not found." for this organization: Clerk
   * answered 404 for it, or a complete listing did not have it and no invitation of it was
   * seen since (an organization created after the listing whose event was lost still counts
   * as existing once one of its invitations arrives). Before any complete listing, an unknown
   * organization is taken to exist, as before organizations were kept.
   */
  organizationMissing(organizationId: string): boolean {
    const row = this.organization.get({ id: organizationId });
    if (row) return row.deletedAt !== null;
    if (!this.organizationsListed.get()?.listed) return false;
    return this.anyLiveInvitation.get({ id: organizationId }) === undefined;
  }

  /** The stored JSON of a live invitation of that organization, or undefined (miss, tombstone, other org). */
  findRaw(organizationId: string, invitationId: string): string | undefined {
    const hit = this.byId.get(invitationId);
    if (!hit || hit.deleted_at !== null || hit.organization_id !== organizationId || hit.raw === null) return undefined;
    return hit.raw;
  }

  /**
   * The mirror has never seen the invitation (no row, not even a tombstone) and does not
   * know its organization to be gone: what read-through may ask Clerk about.
   */
  neverSeen(organizationId: string, invitationId: string): boolean {
    return this.byId.get(invitationId) === undefined && !this.organizationMissing(organizationId);
  }

  /** Rows by status, tombstones counted as `tombstoned` (for /metrics; a full scan of the status index). */
  statusCounts(): Record<string, number> {
    const status = sql<string | null>`case when ${inv.deletedAt} is null then ${inv.status} else 'tombstoned' end`;
    const rows = this.conn.db.select({ status, n: count() }).from(inv).groupBy(status).all();
    return Object.fromEntries(rows.map((r) => [String(r.status), r.n]));
  }

  /** One page of live invitations of an organization, and how many match in all. */
  listRaw(q: ListQuery): { rows: string[]; totalCount: number } {
    const { page, count } = this.listStatements(q);
    const values: Record<string, unknown> = { organizationId: q.organizationId, limit: q.limit, offset: q.offset };
    q.statuses.forEach((s, i) => (values[`s${i}`] = s));
    q.emailAddresses.forEach((e, i) => (values[`e${i}`] = e));
    const rows = page.all(values).map((r) => r.raw!);
    return { rows, totalCount: count.get(values)?.n ?? 0 };
  }

  private listStatements(q: ListQuery): ListStatements {
    // Statements depend only on the shape of the query; a handful of shapes cover all calls.
    const key = `${q.statuses.length}:${q.emailAddresses.length}:${q.orderBy.column}:${q.orderBy.direction}`;
    let s = this.listCache.get(key);
    if (!s) {
      s = this.buildList(q);
      this.listCache.set(key, s);
    }
    return s;
  }

  private buildList(q: ListQuery) {
    const db = this.conn.db;
    const where = and(
      eq(inv.organizationId, sql.placeholder('organizationId')),
      isNull(inv.deletedAt),
      isNotNull(inv.raw),
      q.statuses.length ? inArray(inv.status, q.statuses.map((_, i) => sql.placeholder(`s${i}`))) : undefined,
      // The (organization_id, email_address) index answers it; Clerk stores addresses lowercased.
      q.emailAddresses.length ? inArray(inv.emailAddress, q.emailAddresses.map((_, i) => sql.placeholder(`e${i}`))) : undefined,
    );
    const by = q.orderBy.direction === 'desc' ? desc : asc;
    const column = ORDER_COLUMNS[q.orderBy.column];
    return {
      page: db.select({ raw: inv.raw }).from(inv).where(where).orderBy(by(column), by(inv.id)).limit(sql.placeholder('limit')).offset(sql.placeholder('offset')).prepare(),
      count: db.select({ n: count() }).from(inv).where(where).prepare(),
    };
  }
}

type ListStatements = ReturnType<MirrorReader['buildList']>;
