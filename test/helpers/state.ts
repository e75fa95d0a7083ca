import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { mirrorKeys, type MirrorKeys } from '../../src/state/keys.ts';

/** A key prefix of its own for one test, so tests share the run's Redis without sharing state. */
export function isolatedKeys(name: string): MirrorKeys {
  return mirrorKeys(`t-${name}-${randomBytes(4).toString('hex')}`);
}

/** A plain connection to the run's Redis (DB 0); the caller quits it. */
export function testRedis(): Redis {
  return new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
}
