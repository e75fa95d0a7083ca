import { z } from 'zod';
import { clerkIdSchema } from '../clerk/ids.ts';
import { DERIVED_SOURCE, plausibleVersion, type SyncJobData } from '../queue/job.ts';

const invitationEventData = z.looseObject({
  id: clerkIdSchema('orginv'),
  organization_id: clerkIdSchema('org'),
  updated_at: z.number().int().nonnegative().optional(),
});

/** A claim of an event that the job does not carry: its `updated_at` lay beyond our clock plus MAX_EVENT_CLOCK_SKEW_MS. */
export interface FutureVersionNote {
  organizationId: string;
  invitationId: string;
  updatedAt: number;
}

/**
 * Turns one verified Clerk event into the sync job it asks for; `note` hears of what the job
 * leaves out (logged and counted by the route).
 */
export type EventHandler = (event: { type: string; data: unknown }, receivedAt: number, note?: (n: FutureVersionNote) => void) => SyncJobData;

/**
 * The invitation's fetch. Its `updated_at` becomes the version the job waits for, unless it
 * lies beyond the receipt plus MAX_EVENT_CLOCK_SKEW_MS: then the job carries none, like a
 * reconciliation's (one fetch, BAPI's answer published as it is), and nothing announces it.
 * The event itself is still acknowledged: refused, Svix would retry it for days.
 */
const invitationEvent: EventHandler = (event, receivedAt, note) => {
  const parsed = invitationEventData.safeParse(event.data);
  if (!parsed.success) {
    throw new InvalidEventError(`${event.type} without a valid data.${String(parsed.error.issues[0]?.path[0] ?? 'id')}`);
  }
  const { id: invitationId, organization_id: organizationId, updated_at: updatedAt } = parsed.data;
  const eventUpdatedAt = plausibleVersion(updatedAt, receivedAt);
  if (updatedAt !== undefined && eventUpdatedAt === undefined) note?.({ organizationId, invitationId, updatedAt });
  return { organizationId, invitationId, eventUpdatedAt, receivedAt, reason: event.type };
};

const organizationEventData = z.looseObject({ id: clerkIdSchema('org') });

/**
 * An organization created, changed or deleted: the worker asks Clerk once whether it exists,
 * and records that (a deleted one takes its invitations along).
 */
const organizationEvent: EventHandler = (event, receivedAt) => {
  const parsed = organizationEventData.safeParse(event.data);
  if (!parsed.success) throw new InvalidEventError(`${event.type} without a valid data.id`);
  return { kind: 'organization', organizationId: parsed.data.id, receivedAt, reason: event.type };
};

const roleEventData = z.looseObject({ key: z.string().regex(DERIVED_SOURCE) });
const userEventData = z.looseObject({ id: clerkIdSchema('user') });

/** A role renamed or deleted: the `role_name` of its invitations changes without their `updated_at`. */
const roleChanged: EventHandler = (event, receivedAt) => {
  const parsed = roleEventData.safeParse(event.data);
  if (!parsed.success) throw new InvalidEventError(`${event.type} without a valid data.key`);
  return { kind: 'derived', field: 'role', value: parsed.data.key, receivedAt, reason: event.type };
};

/** A user changed or deleted: the `public_inviter_data` of the invitations they sent changes. */
const inviterChanged: EventHandler = (event, receivedAt) => {
  const parsed = userEventData.safeParse(event.data);
  if (!parsed.success) throw new InvalidEventError(`${event.type} without a valid data.id`);
  return { kind: 'derived', field: 'inviter', value: parsed.data.id, receivedAt, reason: event.type };
};

/**
 * Event types the mirror acts on. Every other Clerk event type is acknowledged and counted,
 * never refused: a refusal makes Svix retry it for days and then disable the endpoint.
 */
export const eventHandlers: Readonly<Record<string, EventHandler>> = Object.freeze({
  'organizationInvitation.created': invitationEvent,
  'organizationInvitation.accepted': invitationEvent,
  'organizationInvitation.revoked': invitationEvent,
  'organization.created': organizationEvent,
  'organization.updated': organizationEvent,
  'organization.deleted': organizationEvent,
  'role.updated': roleChanged,
  'role.deleted': roleChanged,
  'user.updated': inviterChanged,
  'user.deleted': inviterChanged,
});

export class InvalidEventError extends Error {
  override name = 'InvalidEventError';
}
