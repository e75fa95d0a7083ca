import { z } from 'zod';
import { clerkId, DERIVED_SOURCE, type SyncJobData } from '../queue/job.ts';

const invitationEventData = z.looseObject({
  id: clerkId('orginv'),
  organization_id: clerkId('org'),
  updated_at: z.number().int().nonnegative().optional(),
});

/** Turns one verified Clerk event into the sync job it asks for. */
export type EventHandler = (event: { type: string; data: unknown }, receivedAt: number) => SyncJobData;

const invitationEvent: EventHandler = (event, receivedAt) => {
  const parsed = invitationEventData.safeParse(event.data);
  if (!parsed.success) {
    throw new InvalidEventError(`${event.type} without a valid data.${String(parsed.error.issues[0]?.path[0] ?? 'id')}`);
  }
  return {
    organizationId: parsed.data.organization_id,
    invitationId: parsed.data.id,
    eventUpdatedAt: parsed.data.updated_at,
    receivedAt,
    reason: event.type,
  };
};

const organizationEventData = z.looseObject({ id: clerkId('org') });

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
const userEventData = z.looseObject({ id: clerkId('user') });

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
