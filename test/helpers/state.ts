import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { mirrorKeys, type MirrorKeys } from '../../src/state/keys.ts';
import { StatePublisher } from '../../src/state/publisher.ts';
import { SharedState } from '../../src/state/shared-state.ts';

/** A key prefix of its own for one test, so tests share the run's Redis without sharing state. */
export function isolatedKeys(name: string): MirrorKeys {
  return mirrorKeys(`t-${name}-${randomBytes(4).toString('hex')}`);
}

/** A plain connection to the run's Redis (DB 0); the caller quits it. */
export function testRedis(): Redis {
  return new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
}

export interface StateSpace {
  keys: MirrorKeys;
  state: SharedState;
  publisher: StatePublisher;
}

/** A shared state of its own on `redis`, under a fresh key prefix. */
export function stateSpace(redis: Redis, name: string, retentionMs = 86_400_000): StateSpace {
  const keys = isolatedKeys(name);
  return { keys, state: new SharedState(redis, keys), publisher: new StatePublisher({ connection: redis, keys, retentionMs }) };
}

/** The live invitations of the shared state, parsed, by id. */
export async function liveStates(state: SharedState): Promise<Map<string, unknown>> {
  const out = new Map<string, unknown>();
  for await (const batch of state.scan()) for (const s of batch) if (!s.deleted) out.set(s.id, JSON.parse(s.raw!));
  return out;
}
