import type { Redis } from '../redis/connection.ts';
import type { MirrorKeys } from '../state/keys.ts';
import { scriptCommand } from '../state/scripts.ts';

const announce = scriptCommand('announce');

/** How long an announcement counts as recent for its organization's batch (worker/batch.ts). */
export const RECENT_WINDOW_MS = 10_000;

/**
 * The newest `updated_at` any accepted webhook announced for each invitation, kept in Redis
 * next to the queue (same hash tag, so one Cluster slot). The receiver raises it before the
 * job is queued; the worker skips a BAPI call only when the shared state already holds that
 * version (state/scripts/held.lua reads both). A job's own data cannot tell this: coalescing replaces a waiting job's data with
 * whichever copy of an event came last, which may be an older one.
 */
export class AnnouncedVersions {
  /**
   * @param ttlSeconds how long a version is remembered after its last event; once forgotten
   * the worker simply fetches. @defaultValue 7 days
   */
  constructor(
    private readonly redis: Redis,
    private readonly keys: MirrorKeys,
    private readonly ttlSeconds = 7 * 24 * 3600,
  ) {}

  private key(invitationId: string): string {
    return this.keys.announced(invitationId);
  }

  /** Raises the invitation's announced version and, given its organization, notes it as announced at `receivedAt`. */
  raise(invitationId: string, updatedAt: number, recent?: { organizationId: string; receivedAt: number }): Promise<unknown> {
    const key = this.key(invitationId);
    if (!recent) return announce(this.redis, [key], [updatedAt, this.ttlSeconds]);
    return announce(this.redis, [key, this.keys.recentlyAnnounced(recent.organizationId)], [updatedAt, this.ttlSeconds, recent.receivedAt, invitationId, RECENT_WINDOW_MS]);
  }

  async get(invitationId: string): Promise<number | undefined> {
    const v = await this.redis.get(this.key(invitationId));
    return v === null ? undefined : Number(v);
  }
}
