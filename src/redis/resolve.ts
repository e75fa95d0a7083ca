import { dirname, join } from 'node:path';
import type { Config } from '../config.ts';
import { ManagedRedis, runningManagedRedis } from './managed.ts';

/** Where the private redis-server keeps its AOF: next to the mirror database. */
export function managedRedisDir(config: Config): string {
  return join(dirname(config.mirrorDbPath), 'redis');
}

/**
 * Runs `fn` against the service's Redis: REDIS_URL when set; else the private redis-server
 * of a running service; else that server's data started just for `fn` (so the failed set
 * survives between runs and stays inspectable while the service is stopped).
 */
export async function withServiceRedis<T>(config: Config, fn: (url: string) => Promise<T>): Promise<T> {
  if (config.redisUrl) return fn(config.redisUrl);
  const dir = managedRedisDir(config);
  const running = await runningManagedRedis(dir);
  if (running) return fn(running);
  const managed = new ManagedRedis({ dir });
  const url = await managed.start();
  try {
    return await fn(url);
  } finally {
    await managed.stop();
  }
}
