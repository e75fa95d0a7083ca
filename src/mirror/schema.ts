import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';

export const INVITATION_SOURCES = ['webhook', 'backfill', 'reconcile'] as const;
export type InvitationSource = (typeof INVITATION_SOURCES)[number];

/**
 * One row per invitation Clerk has told us about. `raw` is BAPI's JSON exactly as received,
 * so fields Clerk adds later survive; the other columns are copies of it for lookups.
 * A tombstone (`deleted_at` set) is an invitation BAPI answered 404 for: lookups miss it,
 * but it keeps its `updated_at` so an older state arriving late cannot resurrect it.
 */
export const organizationInvitations = sqliteTable(
  'organization_invitations',
  {
    id: text('id').primaryKey(),
    organizationId: text('organization_id').notNull(),
    emailAddress: text('email_address'),
    status: text('status'),
    expiresAt: integer('expires_at'),
    createdAt: integer('created_at'),
    /** Clerk's `updated_at` (ms); for a tombstone, when we saw the 404. Orders all writes. */
    updatedAt: integer('updated_at').notNull(),
    /** When Clerk last confirmed this state (ms, our clock). */
    confirmedAt: integer('confirmed_at').notNull(),
    source: text('source', { enum: INVITATION_SOURCES }).notNull(),
    /** When BAPI answered 404 for it (ms, our clock); null while it exists. */
    deletedAt: integer('deleted_at'),
    /** The JSON exactly as BAPI sent it; the last known one for a tombstone, or null if never seen. */
    raw: text('raw'),
  },
  (t) => [
    index('organization_invitations_org_created_idx').on(t.organizationId, t.createdAt),
    index('organization_invitations_org_email_idx').on(t.organizationId, t.emailAddress),
    index('organization_invitations_status_expires_idx').on(t.status, t.expiresAt),
    index('organization_invitations_confirmed_idx').on(t.confirmedAt),
  ],
);

export type InvitationRow = typeof organizationInvitations.$inferSelect;

/**
 * Small named records of the sync jobs (backfill cursor, last reconciliation and its report),
 * kept in the mirror's own file so they travel with the data they describe: a fresh mirror
 * file has no cursor, and a page and the cursor past it commit in one transaction.
 */
export const syncState = sqliteTable('sync_state', {
  key: text('key').primaryKey(),
  /** JSON. */
  value: text('value').notNull(),
  /** When it was last written (ms, our clock). */
  updatedAt: integer('updated_at').notNull(),
});
