import type { Redis } from '../redis/connection.ts';
import type { MirrorKeys } from '../state/keys.ts';

// Raises the stored version, never lowers it; refreshes the TTL either way.
const RAISE = `
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1`;

type RaiseCapable = Redis & { cimRaiseAnnounced(key: string, version: string, ttl: string): Promise<unknown> };

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
    if (!(redis as unknown as Partial<RaiseCapable>).cimRaiseAnnounced) redis.defineCommand('cimRaiseAnnounced', { numberOfKeys: 1, lua: RAISE });
  }

  private key(invitationId: string): string {
    return this.keys.announced(invitationId);
  }

  raise(invitationId: string, updatedAt: number): Promise<unknown> {
    // EVALSHA once the script is cached (ioredis falls back to EVAL on NOSCRIPT).
    return (this.redis as unknown as RaiseCapable).cimRaiseAnnounced(this.key(invitationId), String(updatedAt), String(this.ttlSeconds));
  }

  async get(invitationId: string): Promise<number | undefined> {
    const v = await this.redis.get(this.key(invitationId));
    return v === null ? undefined : Number(v);
  }
}
