import { closeRedis, connectRedis } from '../redis/connection.ts';
import { createLogger, type Logger } from '../logger.ts';
import { DEFAULT_MIRROR_DB_PATH, mirrorOver, type Mirror } from '../mirror/mirror.ts';
import { migrateMirror } from '../mirror/migrate.ts';
import { openMirrorDb } from '../mirror/open.ts';
import { DEFAULT_KEY_PREFIX, mirrorKeys } from '../state/keys.ts';
import { Replica, type ReplicaStatus } from './replica.ts';

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
 * first lookup already answers what the mirror knows. It never calls Clerk; `status()` says
 * whether it is following, stale or behind.
 */
export async function createReplica(options: CreateReplicaOptions): Promise<ReplicaMirror> {
  const path = options.path ?? (process.env.MIRROR_DB_PATH || DEFAULT_MIRROR_DB_PATH);
  const keys = mirrorKeys(options.keyPrefix ?? (process.env.REDIS_KEY_PREFIX || DEFAULT_KEY_PREFIX));
  const log = options.logger ?? createLogger({ level: 'warn', destination: process.stderr });
  const conn = openMirrorDb({ path });
  migrateMirror(conn);
  const redis = connectRedis(options.redisUrl);
  const blocking = connectRedis(options.redisUrl);
  for (const c of [redis, blocking]) c.on('error', (err) => log.debug({ err: err.message }, 'redis connection error'));
  const replica = new Replica({ redis, blocking, conn, keys, log });
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      await replica.close();
      await closeRedis(redis);
      conn.sqlite.close();
    })());
  replica.start();
  const timeoutMs = options.timeoutMs ?? 60_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      replica.caughtUp,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the replica at ${path} did not catch up with the shared state at ${options.redisUrl.replace(/\/\/[^@/]*@/, '//')} within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    await close();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  const lookups = mirrorOver(conn);
  return {
    getOrganizationInvitation: (p) => lookups.getOrganizationInvitation(p),
    getOrganizationInvitationList: (p) => lookups.getOrganizationInvitationList(p),
    status: () => replica.status(),
    close,
  };
}
