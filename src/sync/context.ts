import { BapiClient } from '../clerk/client.ts';
import type { Config } from '../config.ts';
import { migrateMirror } from '../mirror/migrate.ts';
import { openMirrorDb, type MirrorConnection } from '../mirror/open.ts';
import { connectRedis, type Redis } from '../redis/connection.ts';
import { withServiceRedis } from '../redis/resolve.ts';
import { SharedRateLimiter } from './rate-limiter.ts';

export interface SyncContext {
  conn: MirrorConnection;
  bapi: BapiClient;
  redis: Redis;
  limiter: SharedRateLimiter;
}

/**
 * What the `backfill` and `reconcile` commands run against: the mirror file (migrated),
 * BAPI, and the service's Redis (REDIS_URL, else the private redis-server next to the
 * mirror) for the shared rate limit and the run lock. Everything is closed after `fn`.
 */
export async function withSyncContext<T>(config: Config, dbPath: string, fn: (ctx: SyncContext) => Promise<T>): Promise<T> {
  const bapi = new BapiClient({ apiUrl: config.clerk.apiUrl, secretKey: config.clerk.secretKey!, timeoutMs: config.clerk.timeoutMs });
  const conn = openMirrorDb({ path: dbPath });
  try {
    migrateMirror(conn);
    return await withServiceRedis(config, async (url) => {
      const redis = connectRedis(url);
      redis.on('error', () => {});
      try {
        return await fn({ conn, bapi, redis, limiter: new SharedRateLimiter({ connection: redis, rateLimit: config.clerk.rateLimit }) });
      } finally {
        await redis.quit().catch(() => redis.disconnect());
      }
    });
  } finally {
    conn.sqlite.close();
  }
}

/** An AbortSignal fired by the first SIGINT/SIGTERM; a second one exits at once. */
export function interruptSignal(onFirst: () => void): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const handler = () => {
    if (controller.signal.aborted) process.exit(130);
    onFirst();
    controller.abort(new Error('interrupted'));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
