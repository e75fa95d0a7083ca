import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startRedisServer, type RedisServer } from './helpers/redis-server.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

let redis: RedisServer | undefined;
let dir: string | undefined;

/**
 * One real redis-server for the whole run, unless TEST_REDIS_URL points at one. Test files
 * share its database 0, each under key prefixes of its own (test/helpers/state.ts).
 */
export async function setup(project: TestProject) {
  if (process.env.TEST_REDIS_URL) {
    project.provide('redisUrl', process.env.TEST_REDIS_URL);
    return;
  }
  dir = mkdtempSync(join(tmpdir(), 'cim-test-redis-'));
  redis = await startRedisServer({ dir, readyTimeoutMs: 10_000 });
  project.provide('redisUrl', redis.url);
}

export async function teardown() {
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
