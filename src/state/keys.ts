import { SYNC_QUEUE } from '../queue/names.ts';

/** The key prefix when REDIS_KEY_PREFIX is unset; it is also the BullMQ prefix of every install before prefixes were configurable. */
export const DEFAULT_KEY_PREFIX = 'clerk-invitation-mirror';

/** What REDIS_KEY_PREFIX may be: no braces (the prefix becomes a hash tag) and nothing a key pattern could misread. */
export const KEY_PREFIX_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/**
 * Every Redis key of one mirror (one Clerk instance). The prefix is wrapped in braces, a
 * Redis Cluster hash tag, so the queue, the shared state and every script's keys hash to one
 * slot; two mirrors with different prefixes share a Redis without seeing each other.
 */
export interface MirrorKeys {
  readonly prefix: string;
  /** BullMQ's `prefix` option for every queue of this mirror. */
  readonly queuePrefix: string;
  /** Hash: epoch, last stream id, sequence, when the state was created and filled. */
  readonly meta: string;
  /** Hash: invitation id → its latest state (see state/codec.ts). */
  readonly snapshot: string;
  /** Stream: every accepted change, in one global order. */
  readonly changes: string;
  /** Hash: backfill cursor, last backfill, last reconciliation (JSON). */
  readonly records: string;
  /** Hash: organization id → whether it exists (a state in the snapshot's format, without JSON). */
  readonly organizations: string;
  /** Sorted set: `organization_id/invitation_id` of each pending invitation, scored by its `expires_at`. */
  readonly expiries: string;
  /** The newest `updated_at` a webhook announced for an invitation. */
  announced(invitationId: string): string;
  /** Sorted set: the invitations of an organization webhooks announced lately, scored by when (worker/batch.ts). */
  recentlyAnnounced(organizationId: string): string;
  /** The run lock of a maintenance kind. */
  lock(kind: string): string;
  /** The budget of read-through fetches (replica/read-through.ts), within the shared one. */
  readonly readThroughLimiter: string;
}

export function mirrorKeys(prefix: string = DEFAULT_KEY_PREFIX): MirrorKeys {
  if (!KEY_PREFIX_PATTERN.test(prefix)) throw new Error(`invalid Redis key prefix "${prefix}"`);
  const tag = `{${prefix}}`;
  return Object.freeze({
    prefix,
    queuePrefix: tag,
    meta: `${tag}:state:meta`,
    snapshot: `${tag}:state:snapshot`,
    changes: `${tag}:state:changes`,
    records: `${tag}:state:records`,
    expiries: `${tag}:state:expiries`,
    organizations: `${tag}:state:organizations`,
    announced: (invitationId: string) => `${tag}:${SYNC_QUEUE}:announced:${invitationId}`,
    recentlyAnnounced: (organizationId: string) => `${tag}:${SYNC_QUEUE}:recent:${organizationId}`,
    lock: (kind: string) => `${tag}:sync-lock:${kind}`,
    readThroughLimiter: `${tag}:read-through:limiter`,
  });
}
