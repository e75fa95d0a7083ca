import { takeOverSignals } from '../lifecycle/signals.ts';
import { BapiClient } from '../bapi/client.ts';
import type { Config } from '../config.ts';
import { connectRedis, type Redis } from '../redis/connection.ts';
import { withServiceRedis } from '../redis/resolve.ts';
import { mirrorKeys, type MirrorKeys } from '../state/keys.ts';
import { StatePublisher } from '../state/publisher.ts';
import { SharedState } from '../state/shared-state.ts';
import { SharedRateLimiter } from '../bapi/rate-limiter.ts';

export interface MaintenanceContext {
  bapi: BapiClient;
  redis: Redis;
  keys: MirrorKeys;
  state: SharedState;
  publisher: StatePublisher;
  limiter: SharedRateLimiter;
}

/**
 * What the `backfill` and `reconcile` commands run against: BAPI and the service's Redis
 * (REDIS_URL, else the private redis-server next to the mirror) for the shared state, the
 * shared rate limit and the run lock. Everything is closed after `fn`.
 */
export async function withMaintenanceContext<T>(config: Config, fn: (ctx: MaintenanceContext) => Promise<T>): Promise<T> {
  const bapi = new BapiClient({ apiUrl: config.clerk.apiUrl, secretKey: config.clerk.secretKey!, timeoutMs: config.clerk.timeoutMs });
  const keys = mirrorKeys(config.keyPrefix);
  return withServiceRedis(config, async (url) => {
    const redis = connectRedis(url);
    redis.on('error', () => {});
    try {
      return await fn({
        bapi,
        redis,
        keys,
        state: new SharedState(redis, keys),
        publisher: new StatePublisher({ connection: redis, keys, retentionMs: config.state.retentionMs }),
        limiter: new SharedRateLimiter({ connection: redis, keys, rateLimit: config.clerk.rateLimit }),
      });
    } finally {
      await redis.quit().catch(() => redis.disconnect());
    }
  });
}

/** An AbortSignal fired by the first SIGINT/SIGTERM; a second one exits at once. */
export function interruptSignal(onFirst: () => void): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const handler = () => {
    if (controller.signal.aborted) process.exit(130);
    onFirst();
    controller.abort(new Error('interrupted'));
  };
  const release = takeOverSignals(handler);
  return { signal: controller.signal, dispose: release };
}
