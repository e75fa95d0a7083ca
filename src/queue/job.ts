import { z } from 'zod';

/** Ids Clerk issues: a prefix, an underscore, then letters and digits. Anything else never reaches a path. */
export const clerkId = (prefix: string) => z.string().regex(new RegExp(`^${prefix}_[A-Za-z0-9]{1,64}$`), `expected a ${prefix}_… id`);

/** What one sync job carries: which invitation to re-fetch, and why. */
export const syncJobSchema = z.object({
  organizationId: clerkId('org'),
  invitationId: clerkId('orginv'),
  /** `updated_at` in the event that asked for this fetch; a 404 tombstones at least this version. */
  eventUpdatedAt: z.number().int().nonnegative().optional(),
  /** When the receiver accepted the event (ms): sync lag is measured from here. */
  receivedAt: z.number().int().nonnegative(),
  /** The webhook type, or `reconcile` / `manual`. */
  reason: z.string().max(100),
});

export type SyncJobData = z.infer<typeof syncJobSchema>;

/** The deduplication key: one waiting and one active job per invitation, never two fetches at once. */
export function syncJobKey(d: Pick<SyncJobData, 'organizationId' | 'invitationId'>): string {
  return `${d.organizationId}/${d.invitationId}`;
}
