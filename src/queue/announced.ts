import type { Redis } from '../redis/connection.ts';
import type { MirrorKeys } from '../state/keys.ts';

// Raises the stored version, never lowers it; refreshes the TTL either way. Also notes the
// invitation among its organization's recent announcements (scored by receipt, older ones
// trimmed), for the worker's batches.
const RAISE = `
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if KEYS[2] then
  local at = tonumber(ARGV[3])
  redis.call('ZADD', KEYS[2], at, ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', at - tonumber(ARGV[5]))
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return 1`;

/** How long an announcement counts as recent for its organization's batch (worker/batch.ts). */
export const RECENT_WINDOW_MS = 10_000;

type RaiseCapable = Redis & { cimRaiseAnnounced(...args: string[]): Promise<unknown> };

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
  ) {
    if (!(redis as unknown as Partial<RaiseCapable>).cimRaiseAnnounced) redis.defineCommand('cimRaiseAnnounced', { lua: RAISE });
  }

  private key(invitationId: string): string {
    return this.keys.announced(invitationId);
  }

  /** Raises the invitation's announced version and, given its organization, notes it as announced at `receivedAt`. */
  raise(invitationId: string, updatedAt: number, recent?: { organizationId: string; receivedAt: number }): Promise<unknown> {
    const raise = (this.redis as unknown as RaiseCapable).cimRaiseAnnounced;
    // EVALSHA once the script is cached (ioredis falls back to EVAL on NOSCRIPT).
    if (!recent) return raise.call(this.redis, '1', this.key(invitationId), String(updatedAt), String(this.ttlSeconds));
    return raise.call(
      this.redis,
      '2',
      this.key(invitationId),
      this.keys.recentlyAnnounced(recent.organizationId),
      String(updatedAt),
      String(this.ttlSeconds),
      String(recent.receivedAt),
      invitationId,
      String(RECENT_WINDOW_MS),
    );
  }

  async get(invitationId: string): Promise<number | undefined> {
    const v = await this.redis.get(this.key(invitationId));
    return v === null ? undefined : Number(v);
  }
}
