import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { mirrorKeys, type MirrorKeys } from '../../src/state/keys.ts';
import { StatePublisher } from '../../src/state/publisher.ts';
import { SharedState } from '../../src/state/shared-state.ts';

/**
 * A key prefix of its own for one test (`t-<name>-<random>`), so tests share database 0 of
 * the run's Redis without sharing state. Keys of a prefix are all `{prefix}…` (state/keys.ts).
 */
export function isolatedKeys(name: string): MirrorKeys {
  const label = name.replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 40);
  return mirrorKeys(`t-${label}-${randomBytes(4).toString('hex')}`);
}

/** A plain connection to the run's Redis (DB 0); the caller quits it. */
export function testRedis(): Redis {
  return new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
}

/**
 * The keys of `redis` under `keys`' prefix and its sub-prefixes (`<prefix>.<name>`, see
 * RedisSpace.sub), found with SCAN (never KEYS or FLUSHDB on the shared server).
 */
export async function keysUnder(redis: Redis, keys: MirrorKeys): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `{${keys.prefix}[}.]*`, 'COUNT', 1000);
    found.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return found;
}

/** Deletes every key of `redis` under `keys`' prefix; returns how many there were. */
export async function clearKeys(redis: Redis, keys: MirrorKeys): Promise<number> {
  const found = await keysUnder(redis, keys);
  for (let i = 0; i < found.length; i += 500) await redis.del(...found.slice(i, i + 500));
  return found.length;
}

/**
 * Where one test file (or harness) keeps its Redis data: database 0 of the run's Redis, under
 * a key prefix of its own. Services and commands started on it get `env`; `clear()` removes
 * what they left, and nothing else.
 */
export interface RedisSpace {
  url: string;
  keys: MirrorKeys;
  /** REDIS_URL and REDIS_KEY_PREFIX for a service, a command or loadConfig. */
  env: { REDIS_URL: string; REDIS_KEY_PREFIX: string };
  /** A key under the prefix that no mirror uses, for a test of plain Redis commands. */
  key(name: string): string;
  /** A prefix of its own within the space (`<prefix>.<name>`), for one of several services; `clear()` covers it. */
  sub(name: string): string;
  /** Every key under the prefix. */
  keyNames(): Promise<string[]>;
  /** Deletes every key under the prefix. */
  clear(): Promise<void>;
}

export function redisSpace(name: string): RedisSpace {
  const url = inject('redisUrl');
  const keys = isolatedKeys(name);
  const withRedis = async <T>(fn: (r: Redis) => Promise<T>): Promise<T> => {
    const r = new Redis(url, { maxRetriesPerRequest: 1 });
    try {
      return await fn(r);
    } finally {
      r.disconnect();
    }
  };
  return {
    url,
    keys,
    env: { REDIS_URL: url, REDIS_KEY_PREFIX: keys.prefix },
    key: (k) => `{${keys.prefix}}:test:${k}`,
    sub: (n) => mirrorKeys(`${keys.prefix}.${n}`).prefix,
    keyNames: () => withRedis((r) => keysUnder(r, keys)),
    clear: () => withRedis(async (r) => void (await clearKeys(r, keys))),
  };
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
