import { BapiRateLimitedError, classifyError, statusOf } from '../bapi/errors.ts';
import type { BapiClient } from '../bapi/client.ts';
import type { InvitationJSON } from '../clerk/types.ts';
import { throttledLog, type Logger } from '../logger.ts';
import { SharedRateLimiter } from '../bapi/rate-limiter.ts';
import type { Redis } from '../redis/connection.ts';
import type { MirrorKeys } from '../state/keys.ts';
import { StatePublisher } from '../state/publisher.ts';
import type { PipelineStats } from '../stats.ts';

export interface ReadThroughOptions {
  bapi: BapiClient;
  /** A connection to the shared state's Redis (non-blocking commands). */
  connection: Redis;
  keys: MirrorKeys;
  /** The shared BAPI budget (BAPI_RATE_LIMIT per BAPI_RATE_WINDOW_MS): a read-through call spends a token of it too. */
  rateLimit: { max: number; windowMs: number };
  /**
   * Read-through calls per window, for every process of the mirror together, on top of the
   * shared budget: a flood of unknown ids spends this many calls at most.
   * @defaultValue a tenth of `rateLimit.max`, at least 1
   */
  maxPerWindow?: number;
  /** How long an id Clerk answered 404 for is answered as missing without asking again. @defaultValue 60000 */
  negativeTtlMs?: number;
  /**
   * How long the change stream keeps a change: every publish trims what is older. The
   * service passes its CHANGE_STREAM_RETENTION_MS; the library, which does not know it,
   * trims nothing (the service's own publishes keep trimming). @defaultValue a year
   */
  retentionMs?: number;
  log: Logger;
  stats?: PipelineStats;
  now?: () => number;
}

/** How a read-through lookup ended. */
export type ReadThroughAnswer =
  | { source: 'clerk'; raw: string; invitation: InvitationJSON }
  /** Clerk answered 404, now or within the negative cache's time. */
  | { source: 'clerk'; missing: true }
  /** No call was made (the cap or the budget is spent, Clerk failed): the mirror's own answer stands. */
  | undefined;

/** Negative answers remembered at most (oldest forgotten first). */
const MAX_NEGATIVE = 10_000;

/**
 * On a lookup of an invitation the mirror has never seen, asks Clerk (under the shared
 * budget and a cap of its own), publishes what Clerk answered into the shared state, so
 * every replica gets it, and answers it. Clerk's 404s are remembered for a while; lookups of
 * one id at the same moment share one call; when the cap or the budget is spent, or Clerk
 * fails, no call waits: the mirror's own answer stands.
 */
export class ReadThrough {
  private readonly budget: SharedRateLimiter;
  private readonly cap: SharedRateLimiter;
  private readonly publisher: StatePublisher;
  private readonly missingUntil = new Map<string, number>();
  private readonly inFlight = new Map<string, Promise<ReadThroughAnswer>>();
  private readonly now: () => number;
  private readonly warn;

  constructor(private readonly o: ReadThroughOptions) {
    this.now = o.now ?? Date.now;
    this.warn = throttledLog(o.log, 60_000, this.now);
    this.budget = new SharedRateLimiter({ connection: o.connection, keys: o.keys, rateLimit: o.rateLimit });
    const max = o.maxPerWindow ?? Math.max(1, Math.floor(o.rateLimit.max / 10));
    this.cap = new SharedRateLimiter({ connection: o.connection, keys: o.keys, rateLimit: { max, windowMs: o.rateLimit.windowMs }, key: o.keys.readThroughLimiter });
    this.publisher = new StatePublisher({ connection: o.connection, keys: o.keys, retentionMs: o.retentionMs ?? 365 * 86_400_000 });
  }

  lookup(organizationId: string, invitationId: string): Promise<ReadThroughAnswer> {
    const key = `${organizationId}/${invitationId}`;
    const until = this.missingUntil.get(key);
    if (until !== undefined) {
      if (until > this.now()) return Promise.resolve({ source: 'clerk', missing: true });
      this.missingUntil.delete(key);
    }
    let p = this.inFlight.get(key);
    if (!p) {
      p = this.fetch(organizationId, invitationId, key).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, p);
    }
    return p;
  }

  private async fetch(organizationId: string, invitationId: string, key: string): Promise<ReadThroughAnswer> {
    try {
      if (!(await this.cap.tryAcquire()) || !(await this.budget.tryAcquire())) return undefined;
    } catch (err) {
      this.warn('warn', 'budget', { err: (err as Error).message }, 'read-through cannot reach the shared budget in Redis: answering from the mirror');
      return undefined;
    }
    const startedAt = performance.now();
    try {
      const got = await this.o.bapi.getOrganizationInvitation(organizationId, invitationId);
      this.o.stats?.bapiCall('lookup', '200', performance.now() - startedAt);
      // Published as a webhook's fetch is (older replicas know no other source); answered whether or not Redis took it.
      await this.publisher
        .publish([{ kind: 'present', invitation: got.invitation, raw: got.raw, observedAt: got.receivedAt, source: 'webhook' }])
        .catch((err: unknown) => this.o.log.warn({ err: (err as Error).message, invitationId }, 'could not publish a read-through answer; a webhook or reconciliation brings it'));
      return { source: 'clerk', raw: got.raw, invitation: got.invitation };
    } catch (err) {
      const kind = classifyError(err);
      this.o.stats?.bapiCall('lookup', statusOf(err), performance.now() - startedAt);
      // Clerk's 429 pauses every caller of the instance, as anywhere else.
      if (err instanceof BapiRateLimitedError) await this.budget.block(err.retryAfterMs).catch(() => {});
      if (kind !== 'not_found') return undefined;
      if (this.missingUntil.size >= MAX_NEGATIVE) this.missingUntil.delete(this.missingUntil.keys().next().value!);
      this.missingUntil.set(key, this.now() + (this.o.negativeTtlMs ?? 60_000));
      return { source: 'clerk', missing: true };
    }
  }
}
