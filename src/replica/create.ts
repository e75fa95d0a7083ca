import { closeRedis, connectRedis } from '../redis/connection.ts';
import { createLogger, type Logger } from '../logger.ts';
import { DEFAULT_MIRROR_DB_PATH, mirrorOver, type Mirror } from '../mirror/mirror.ts';
import { migrateMirror } from '../mirror/migrate.ts';
import { openMirrorDb } from '../mirror/open.ts';
import { DEFAULT_KEY_PREFIX, mirrorKeys } from '../state/keys.ts';
import { BapiClient } from '../bapi/client.ts';
import { DEFAULT_CLERK_API_URL, defaultRateLimit } from '../config.ts';
import { ReadThrough } from './read-through.ts';
import { Replica } from './replica.ts';
import type { ReplicaStatus } from './status.ts';
import { withTimeout } from '../lifecycle/time-limit.ts';

export interface CreateReplicaOptions {
  /** The Redis that holds the mirror's shared state (the service's REDIS_URL). */
  redisUrl: string;
  /**
   * SQLite file this replica keeps; `:memory:` keeps it in memory (loaded again at every start).
   * One replica per file.
   * @defaultValue `process.env.MIRROR_DB_PATH`, else `./data/mirror.db`
   */
  path?: string;
  /** @defaultValue `process.env.REDIS_KEY_PREFIX`, else `clerk-invitation-mirror` */
  keyPrefix?: string;
  /** How long to wait for the first catch-up before rejecting (and closing). @defaultValue 60000 */
  timeoutMs?: number;
  /** Where the replica logs. @defaultValue warnings and errors to stderr */
  logger?: Logger;
  /**
   * Read-through: a lookup of an invitation the mirror has never seen (or older than its
   * `minUpdatedAt`) asks Clerk under the mirror's shared budget, publishes the answer for
   * every replica and answers it (`lookupOrganizationInvitation` says `source: 'clerk'`).
   * Off unless given.
   */
  readThrough?: {
    secretKey: string;
    /** @defaultValue https://api.clerk.com */
    apiUrl?: string;
    /** The service's BAPI_RATE_LIMIT / BAPI_RATE_WINDOW_MS. @defaultValue the service's defaults for the key */
    rateLimit?: { max: number; windowMs: number };
    /** Read-through requests per window, every host together. @defaultValue a tenth of `rateLimit.max`, at least 1 */
    maxPerWindow?: number;
    /** How long Clerk's 404 for an id is remembered. @defaultValue 60000 */
    negativeTtlMs?: number;
  };
}

/** A local mirror that follows the shared state: the lookups of `createMirror` plus where it stands. */
export interface ReplicaMirror extends Omit<Mirror, 'close'> {
  status(): Promise<ReplicaStatus>;
  /** Stops following and closes the file. */
  close(): Promise<void>;
}

/**
 * Starts a replica in this process: it loads the shared state into `path` and keeps it
 * following until `close()`. Resolves once the file has caught up with the state, so the
 * first lookup already answers what the mirror knows. It never calls Clerk unless
 * `readThrough` is given; `status()` says whether it is following, stale or behind.
 */
export async function createReplica(options: CreateReplicaOptions): Promise<ReplicaMirror> {
  const path = options.path ?? (process.env.MIRROR_DB_PATH || DEFAULT_MIRROR_DB_PATH);
  const keys = mirrorKeys(options.keyPrefix ?? (process.env.REDIS_KEY_PREFIX || DEFAULT_KEY_PREFIX));
  const log = options.logger ?? createLogger({ level: 'warn', destination: process.stderr });
  const conn = openMirrorDb({ path });
  try {
    migrateMirror(conn);
  } catch (err) {
    conn.close();
    throw err;
  }
  const redis = connectRedis(options.redisUrl);
  const blocking = connectRedis(options.redisUrl);
  for (const c of [redis, blocking]) c.on('error', (err) => log.debug({ err: err.message }, 'redis connection error'));
  const replica = new Replica({ redis, blocking, conn, keys, log });
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      await replica.close();
      await closeRedis(redis);
      conn.close();
    })());
  replica.start();
  const timeoutMs = options.timeoutMs ?? 60_000;
  try {
    await withTimeout(
      replica.caughtUp,
      timeoutMs,
      () => new Error(`the replica at ${path} did not catch up with the shared state at ${options.redisUrl.replace(/\/\/[^@/]*@/, '//')} within ${timeoutMs} ms`),
    );
  } catch (err) {
    await close();
    throw err;
  }
  const rt = options.readThrough;
  const readThrough =
    rt &&
    new ReadThrough({
      bapi: new BapiClient({ apiUrl: rt.apiUrl ?? DEFAULT_CLERK_API_URL, secretKey: rt.secretKey }),
      connection: redis,
      keys,
      rateLimit: rt.rateLimit ?? { max: defaultRateLimit(rt.secretKey), windowMs: 10_000 },
      maxPerWindow: rt.maxPerWindow,
      negativeTtlMs: rt.negativeTtlMs,
      log,
    });
  const lookups = mirrorOver(conn, undefined, { readThrough: readThrough && ((org, inv) => readThrough.lookup(org, inv)) });
  return {
    getOrganizationInvitation: (p, o) => lookups.getOrganizationInvitation(p, o),
    lookupOrganizationInvitation: (p, o) => lookups.lookupOrganizationInvitation(p, o),
    getOrganizationInvitationList: (p) => lookups.getOrganizationInvitationList(p),
    status: () => replica.status(),
    close,
  };
}
