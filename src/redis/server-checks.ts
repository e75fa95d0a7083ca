import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';
import { withOneShotRedis } from './connection.ts';
import { durabilityProblem } from './durability.ts';
import { redactRedisUrl } from './wait.ts';

/** Start-up refused this Redis: one line naming the setting and the fix. */
export class RedisUnfitError extends Error {
  override name = 'RedisUnfitError';
}

type Commands = Pick<Redis, 'call' | 'info' | 'set'>;

/** The key write probes set (with a short TTL): one of ours, in the mirror's hash tag. */
export const writeProbeKey = (keys: { queuePrefix: string }): string => `${keys.queuePrefix}:write-probe`;

const infoField = (info: string, field: string): string | undefined => new RegExp(`^${field}:(.*?)\\r?$`, 'm').exec(info)?.[1]?.trim();

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** A write refused because Redis reached `maxmemory` under `noeviction`. */
export const isOutOfMemory = (err: unknown): boolean => /\bOOM command not allowed\b/.test(message(err));
/** A write refused because the server is a read-only replica. */
export const isReadOnly = (err: unknown): boolean => /^READONLY\b|\bREADONLY You can't write\b/.test(message(err));

/**
 * The server's `maxmemory-policy`: CONFIG GET, or `INFO memory` where a managed Redis disables
 * or renames CONFIG; undefined when neither answers.
 */
export async function evictionPolicy(redis: Commands): Promise<string | undefined> {
  try {
    const answer = (await redis.call('CONFIG', 'GET', 'maxmemory-policy')) as string[];
    if (Array.isArray(answer) && typeof answer[1] === 'string') return answer[1];
  } catch {
    // disabled or renamed: INFO below
  }
  try {
    return infoField(await redis.info('memory'), 'maxmemory_policy');
  } catch {
    return undefined;
  }
}

/** What `/readyz` and the logs say about a policy other than noeviction. */
export function policyProblem(policy: string): string {
  return `Redis maxmemory-policy is ${policy}, not noeviction: under memory pressure Redis deletes queued jobs and shared state (acknowledged webhooks lost); run \`CONFIG SET maxmemory-policy noeviction\` and set it in redis.conf`;
}

const CLUSTER_REFUSAL =
  'is a Redis Cluster node (INFO cluster: cluster_enabled:1); Redis Cluster is not supported yet: point REDIS_URL at a single Redis, or at a primary (with replicas or Sentinel) behind one URL';
const REPLICA_PROBLEM = 'Redis is a read-only replica (INFO replication: role:slave): every webhook would be refused; point REDIS_URL at the primary';
const OOM_PROBLEM = 'Redis is out of memory (used_memory reached maxmemory, policy noeviction): it refuses writes, webhooks get 503; free memory or raise maxmemory';

/**
 * Whether Redis takes writes of ours: not a replica (`INFO replication`), and a probe write to
 * `probeKey` (a short TTL) is not refused as READONLY or OOM. Resolves true or the cause.
 */
export async function redisWritable(redis: Commands, probeKey: string): Promise<true | string> {
  // Where INFO is disabled too, the probe write alone tells a read-only replica.
  const role = infoField(await redis.info('replication').catch(() => ''), 'role');
  if (role === 'slave' || role === 'replica') return REPLICA_PROBLEM;
  try {
    await redis.set(probeKey, String(Date.now()), 'PX', 10_000);
  } catch (err) {
    if (isReadOnly(err)) return REPLICA_PROBLEM;
    if (isOutOfMemory(err)) return OOM_PROBLEM;
    throw err;
  }
  return true;
}

/**
 * The start-up check, right after Redis first answers: refuses (RedisUnfitError, one line) a
 * Cluster node and a `maxmemory-policy` other than `noeviction` (an evicted job is a lost
 * event); warns once when the policy cannot be read, when the server is a replica, and, with
 * `durability` (a receiver: its 2xx promises the job survives a crash), when Redis could lose
 * acknowledged jobs (`durabilityProblem`).
 */
export async function checkRedisServer(url: string, { log, durability = false }: { log?: Logger; durability?: boolean } = {}): Promise<void> {
  const where = redactRedisUrl(url);
  await withOneShotRedis(url, async (r) => {
    let cluster: string | undefined;
    try {
      cluster = infoField(await r.info('cluster'), 'cluster_enabled');
    } catch {
      cluster = undefined;
    }
    if (cluster === '1') throw new RedisUnfitError(`Redis at ${where} ${CLUSTER_REFUSAL}`);
    const policy = await evictionPolicy(r);
    if (policy === undefined) {
      log?.warn({ redis: where }, 'cannot read Redis maxmemory-policy (CONFIG GET and INFO memory refused): make sure it is noeviction, or an evicted job is a lost webhook');
    } else if (policy !== 'noeviction') {
      throw new RedisUnfitError(`Redis at ${where}: ${policyProblem(policy)}`);
    }
    const role = infoField(await r.info('replication').catch(() => ''), 'role');
    if (role === 'slave' || role === 'replica') log?.warn({ redis: where }, REPLICA_PROBLEM);
    const problem = durability ? await durabilityProblem(r) : undefined;
    if (problem) log?.warn({ problem }, 'Redis may lose acknowledged webhooks: set appendonly yes and appendfsync always (README, "Redis")');
  });
}

/**
 * The eviction policy, kept checked while the service runs: again at every reconnection
 * (logged when wrong) and on every readiness probe (at most once a second), so a policy
 * changed at runtime fails `/readyz` with `policyProblem`.
 */
export class EvictionPolicyWatch {
  private checked: { at: number; result: Promise<true | string> } | undefined;
  private lastLogged: string | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly log: Logger,
  ) {
    redis.on('ready', () => {
      this.checked = undefined;
      void this.readiness().then((r) => {
        if (r !== true && r !== this.lastLogged) log.error(r);
        this.lastLogged = r === true ? undefined : r;
      });
    });
  }

  /** true, or why not: a policy other than noeviction (an unreadable one passes: warned at start). */
  readiness(): Promise<true | string> {
    const now = Date.now();
    if (!this.checked || now - this.checked.at >= 1000) {
      this.checked = {
        at: now,
        result: evictionPolicy(this.redis).then((p) => (p === undefined || p === 'noeviction' ? true : policyProblem(p))),
      };
    }
    return this.checked.result;
  }
}
