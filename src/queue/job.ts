import { z } from 'zod';
import { clerkIdSchema } from '../clerk/ids.ts';

const common = {
  organizationId: clerkIdSchema('org'),
  /** When the receiver accepted the event (ms): sync lag is measured from here. */
  receivedAt: z.number().int().nonnegative(),
  /** The webhook type, or `reconcile` / `manual`. */
  reason: z.string().max(100),
};

/**
 * How far past our clock an event's `updated_at` may lie and still count as a version. Clerk
 * stamps `updated_at` before Svix signs and sends the event, so a genuine one trails its
 * receipt, ahead only by the difference between Clerk's clock and ours; Svix's signatures
 * allow the same 5 minutes either way. Beyond that it is a forgery or a bug, and taken as a
 * version it would hold every later event of the invitation back (BAPI never answers it) and
 * make each late copy fetch for as long as the announced version is remembered (7 days).
 */
export const MAX_EVENT_CLOCK_SKEW_MS = 5 * 60_000;

/** `updatedAt` when it may be a version Clerk gave by `at` (ms, our clock); undefined when it lies beyond MAX_EVENT_CLOCK_SKEW_MS past it. */
export function plausibleVersion(updatedAt: number | undefined, at: number): number | undefined {
  return updatedAt !== undefined && updatedAt <= at + MAX_EVENT_CLOCK_SKEW_MS ? updatedAt : undefined;
}

/** Re-fetch one invitation. Jobs queued before job kinds existed carry no `kind`: they are these. */
export const invitationJobSchema = z.object({
  kind: z.literal('invitation').optional(),
  ...common,
  invitationId: clerkIdSchema('orginv'),
  /**
   * `updated_at` in the event that asked for this fetch: the version BAPI must answer at
   * least (the skip rule, stale reads). Only a claim: never stored, not even in a tombstone,
   * and absent when it lay beyond the receipt plus MAX_EVENT_CLOCK_SKEW_MS.
   */
  eventUpdatedAt: z.number().int().nonnegative().optional(),
  /** The job already waited once for its organization's batch: it fetches on its own now. */
  deferred: z.boolean().optional(),
});

/**
 * Fetch, through the organization's list pages, the invitations of it that webhooks announced
 * lately and the shared state does not hold yet (worker/batch.ts): a bulk invite costs a page
 * per 500, not a call each.
 */
export const batchJobSchema = z.object({ kind: z.literal('batch'), ...common });

/**
 * How long a batch waits after the first invitation asked for it, so that the rest of a bulk
 * invite is announced by then and one page shows them all. Not restarted by later requests:
 * a steady stream still gets a batch every so often.
 */
export const BATCH_WAIT_MS = 500;

/**
 * Ask Clerk whether an organization exists and record the answer; when it does not, every
 * invitation of it leaves the shared state too (BAPI 404s them all, and sends no invitation
 * event for them).
 */
export const organizationJobSchema = z.object({ kind: z.literal('organization'), ...common });

/** A role key (`org:admin`) or a user id: what names the object a derived field comes from. */
export const DERIVED_SOURCE = /^[A-Za-z0-9:_-]{1,100}$/;

/** Fields Clerk derives when it reads, from another object: a role's name, the inviting user. */
export const DERIVED_FIELDS = ['role', 'inviter'] as const;

/**
 * Re-fetch every invitation whose derived fields come from a changed object: `role` (its
 * `key`, for `role_name`) or `inviter` (a user id, for `public_inviter_data`). Roles and users
 * are instance-wide, so no organization.
 */
export const derivedJobSchema = z.object({
  kind: z.literal('derived'),
  field: z.enum(DERIVED_FIELDS),
  value: z.string().regex(DERIVED_SOURCE, 'expected a role key or a user id'),
  receivedAt: common.receivedAt,
  reason: common.reason,
});

/** What one sync job carries: what to re-fetch, and why. */
export const syncJobSchema = z.union([organizationJobSchema, batchJobSchema, derivedJobSchema, invitationJobSchema]);

export type InvitationJobData = z.infer<typeof invitationJobSchema>;
export type OrganizationJobData = z.infer<typeof organizationJobSchema>;
export type DerivedJobData = z.infer<typeof derivedJobSchema>;
export type BatchJobData = z.infer<typeof batchJobSchema>;
export type SyncJobData = z.infer<typeof syncJobSchema>;

/** True for a job about one invitation (every job without a kind). */
export function isInvitationJob(d: SyncJobData): d is InvitationJobData {
  return d.kind === undefined || d.kind === 'invitation';
}

/**
 * The deduplication key: one waiting and one active job per invitation (or organization),
 * never two fetches of one at once.
 */
export function syncJobKey(d: SyncJobData): string {
  if (isInvitationJob(d)) return `${d.organizationId}/${d.invitationId}`;
  if (d.kind === 'organization') return `${d.organizationId}/*`;
  if (d.kind === 'batch') return `${d.organizationId}/batch`;
  return `${d.field}:${d.value}`;
}
