import { sql } from 'drizzle-orm';
import { check, index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';
import { STATE_SOURCES } from '../state/codec.ts';

/**
 * One row per invitation of the shared state, as the replica last applied it. `raw` is BAPI's
 * JSON exactly as received, so fields Clerk adds later survive; the other columns are copies
 * of it for lookups. A tombstone (`deleted_at` set) is an invitation BAPI answered 404 for:
 * lookups miss it.
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
    /** Clerk's `updated_at` (ms); for a tombstone, the newest version known before the 404. */
    updatedAt: integer('updated_at').notNull(),
    /** When Clerk last confirmed this state (ms, the publisher's clock). */
    confirmedAt: integer('confirmed_at').notNull(),
    source: text('source', { enum: STATE_SOURCES }).notNull(),
    /** Set when BAPI answered 404 (the confirmation time of the tombstone); null while it exists. */
    deletedAt: integer('deleted_at'),
    /** The JSON exactly as BAPI sent it; the last known one for a tombstone, or null if never seen. */
    raw: text('raw'),
  },
  (t) => [
    index('organization_invitations_org_created_idx').on(t.organizationId, t.createdAt),
    index('organization_invitations_org_email_idx').on(t.organizationId, t.emailAddress),
  ],
);

export type InvitationRow = typeof organizationInvitations.$inferSelect;

/**
 * One row per organization of the shared state: whether it exists, not what it holds (the
 * mirror serves no organization JSON). A tombstone (`deleted_at` set) is an organization BAPI
 * answered 404 for: its lists and invitations answer "Given organization not found.".
 */
export const organizations = sqliteTable('organizations', {
  id: text('id').primaryKey(),
  /** When Clerk last confirmed this state (ms, the publisher's clock). */
  confirmedAt: integer('confirmed_at').notNull(),
  source: text('source', { enum: STATE_SOURCES }).notNull(),
  /** Set when BAPI answered 404 (the confirmation time of the tombstone); null while it exists. */
  deletedAt: integer('deleted_at'),
});

export type OrganizationRow = typeof organizations.$inferSelect;
export type NewInvitationRow = typeof organizationInvitations.$inferInsert;

/**
 * Where this file stands in the shared state: one row, written in the same transaction as the
 * rows it accounts for, so a crash never applies a change twice or skips one.
 */
export const replicaPosition = sqliteTable(
  'replica_position',
  {
    id: integer('id').primaryKey(),
    /** The shared state's epoch these rows came from. */
    epoch: text('epoch').notNull(),
    /** The change stream id of the last change applied. */
    streamId: text('stream_id').notNull(),
    /** Its sequence number within the epoch. */
    seq: integer('seq').notNull(),
    /**
     * The file may also hold rows of an earlier state (Redis lost its data): kept and served
     * until the new state is filled, then removed where the new state has no such invitation.
     */
    carriesOlderState: integer('carries_older_state', { mode: 'boolean' }).notNull(),
    /**
     * The file holds every organization Clerk listed in a complete pass of this epoch, so an
     * organization it does not know (and holds no invitation of) does not exist. False until
     * then: an unknown organization's list answers empty, as before organizations were kept.
     */
    organizationsListed: integer('organizations_listed', { mode: 'boolean' }).notNull().default(false),
    /** When it was last written (ms, this host's clock). */
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [check('replica_position_single_row', sql`${t.id} = 1`)],
);

export type ReplicaPositionRow = typeof replicaPosition.$inferSelect;
