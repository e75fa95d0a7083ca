import { z } from 'zod';

export const INVITATION_STATUSES = ['pending', 'accepted', 'revoked', 'expired'] as const;
export type InvitationStatus = (typeof INVITATION_STATUSES)[number];

/**
 * BAPI's `organization_invitation` JSON. Only what the mirror indexes is checked; every other
 * field passes through untouched so that what Clerk adds later survives the round trip.
 */
export const invitationJsonSchema = z.looseObject({
  object: z.literal('organization_invitation'),
  id: z.string().min(1),
  organization_id: z.string().min(1),
  email_address: z.string(),
  status: z.string().optional(),
  created_at: z.number().int(),
  updated_at: z.number().int(),
  expires_at: z.number().int().nullable().optional(),
});

export type InvitationJSON = z.infer<typeof invitationJsonSchema>;

export const invitationListSchema = z.looseObject({
  data: z.array(invitationJsonSchema),
  total_count: z.number().int().nonnegative(),
});

export type InvitationListJSON = z.infer<typeof invitationListSchema>;

/** Clerk's error body, as on every non-2xx answer. */
export interface ClerkErrorJSON {
  errors: { code: string; message: string; long_message?: string; meta?: Record<string, unknown> }[];
  clerk_trace_id?: string;
}
