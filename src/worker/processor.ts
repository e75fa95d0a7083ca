import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { rateLimitWaitMs, type SharedRateLimiter } from '../bapi/rate-limiter.ts';
import { classifyError, statusOf, type BapiError } from '../bapi/errors.ts';
import type { BapiClient } from '../bapi/client.ts';
import { throttledLog, type Logger } from '../logger.ts';
import {
  BATCH_WAIT_MS,
  isInvitationJob,
  MAX_EVENT_CLOCK_SKEW_MS,
  plausibleVersion,
  syncJobSchema,
  type BatchJobData,
  type DerivedJobData,
  type InvitationJobData,
  type OrganizationJobData,
  type SyncJobData,
} from '../queue/job.ts';
import { BATCH_THRESHOLD, type BatchResult } from './batch.ts';
import type { RefreshResult } from './derived.ts';
import type { InvitationState, PublishedState, PublishOutcome } from '../state/publisher.ts';
import { holdsAnnounced, type Held } from '../state/shared-state.ts';
import type { BapiCallerName, PipelineStats } from '../stats.ts';

export interface ProcessorDeps {
  bapi: BapiClient;
  /** Publishes a canonical state into the shared state (batched per turn: concurrent jobs' states go together). */
  publish(state: PublishedState): Promise<PublishOutcome>;
  /**
   * The stored and the newest announced version of an invitation (SharedState#held, batched
   * per turn); without it every job fetches.
   */
  held?: (invitation: { invitationId: string; organizationId: string }) => Promise<Held>;
  /**
   * Bulk changes in one organization: `requestBatch` queues its batch job (deduplicated),
   * `fetchBatch` runs one (worker/batch.ts). Without them every invitation is fetched on its own.
   */
  requestBatch?: (job: BatchJobData) => Promise<void>;
  fetchBatch?: (job: BatchJobData) => Promise<BatchResult>;
  /**
   * Tombstones, in the shared state, an organization Clerk no longer has and every live
   * invitation of it, and says how many invitations; without it an organization job only
   * records the organization's existence.
   */
  removeOrganization?: (organizationId: string, receivedAt: number) => Promise<number>;
  /** Re-fetches the invitations whose derived fields a changed role or user sets (worker/derived.ts). */
  refreshDerived?: (job: DerivedJobData) => Promise<RefreshResult>;
  /**
   * Gives back the worker limiter's token of a job that sent no BAPI request (a skip, a
   * deferral, a batch whose pages take tokens of their own), so such jobs do not spend the
   * budget; without it every job costs one.
   */
  refundBudget?: (takenAt: number) => Promise<unknown>;
  /** The shared BAPI budget: a 429 blocks it, which pauses every worker of the queue and every other caller. */
  budget: Pick<SharedRateLimiter, 'block'>;
  log: Logger;
  stats: PipelineStats;
  /**
   * How long after the event a fetch that answers an older state than the event announced is
   * retried (with the job's backoff) before the newest answer is published as it is. BAPI's
   * read-after-write is undocumented; 0 publishes at once.
   * @defaultValue 30_000
   */
  staleReadWaitMs?: number;
  now?: () => number;
}

/** What one job did, kept as the job's return value for inspection. */
export interface SyncResult {
  outcome: PublishOutcome;
  gone: boolean;
  /**
   * BAPI 404'd the invitation under the job's organization while the shared state holds it
   * under another: nothing was tombstoned (the event named the wrong organization).
   */
  otherOrganization?: boolean;
  /** True when the shared state already held the event's version and BAPI was not called. */
  skipped?: boolean;
  /** Organization jobs: how many invitations were tombstoned because Clerk no longer has the organization. */
  removed?: number;
  /** Derived-field jobs: what was found and fetched. */
  refreshed?: RefreshResult;
  /** Batch jobs: what the organization's pages covered. */
  batch?: BatchResult;
}

type FailureHandler = (err: BapiError, job: Job<SyncJobData>) => Promise<never>;

/**
 * Fetches the canonical invitation and publishes it into the shared state. What a failure does to the job depends on
 * its kind, one handler each: a 404 is an answer (tombstone), a 429 pauses the whole queue
 * without spending an attempt, transient errors retry with backoff, configuration errors
 * fail at once and loudly.
 */
/** Fetches of an invitation at its expiry that may still answer pending before it is left as it is. */
const EXPIRY_TRIES = 3;

/**
 * What a job's states are recorded as coming from: every job stands for an event (a webhook,
 * or an expiry Clerk sends none for); backfill and reconciliation publish their own.
 */
const JOB_SOURCE = 'webhook' as const;

/** What `callBapi` gives for a 404. */
const NOT_FOUND = Symbol('not found');

/** BAPI answered an older state than the event announced: the job retries with its backoff. */
export class StaleReadError extends Error {
  override name = 'StaleReadError';
}

/**
 * How long an invitation job that asked for its organization's batch waits before it looks
 * again: past the batch's own wait and a page or two. By then the batch has published its
 * state (the job fetches nothing) or left it to this job.
 */
const BATCH_DEFER_MS = 3 * BATCH_WAIT_MS;

export function createProcessor({ bapi, publish, held, requestBatch, fetchBatch, removeOrganization, refreshDerived, refundBudget, budget, log, stats, staleReadWaitMs = 30_000, now = Date.now }: ProcessorDeps) {
  /** Jobs that sent a request through `callBapi` (and so used their token). */
  const called = new WeakSet<Job<SyncJobData>>();
  let warnedAboutCredentials = false;
  const throttled = throttledLog(log, 60_000, now);

  const onFailure: Record<'rate_limited' | 'retryable' | 'fatal', FailureHandler> = {
    async rate_limited(err) {
      const waitMs = rateLimitWaitMs(err);
      stats.rateLimitWait(waitMs);
      log.warn({ waitMs }, 'BAPI answered 429: pausing the sync queue');
      await budget.block(waitMs);
      throw Worker.RateLimitError();
    },
    async retryable(err, job) {
      stats.jobs.retried++;
      log.warn({ jobId: job.id, attempt: job.attemptsMade + 1, status: err.status, err: err.message }, 'BAPI call failed; will retry');
      throw err;
    },
    async fatal(err, job) {
      if ((err.status === 401 || err.status === 403) && !warnedAboutCredentials) {
        warnedAboutCredentials = true;
        log.error(
          { status: err.status },
          'BAPI refused CLERK_SECRET_KEY: jobs fail until it is fixed; then run `clerk-invitation-mirror failed retry --all`',
        );
      } else {
        log.error({ jobId: job.id, status: err.status, err: err.message }, 'BAPI answer cannot be used; job failed');
      }
      throw new UnrecoverableError(err.message);
    },
  };

  /**
   * Late or duplicated events about states the shared state already holds (or has passed)
   * need no fetch: coalescing merges only events that wait together, this catches the rest.
   * Reconciliation jobs (no event version) always fetch. Also says whether the job's
   * organization has a burst of announcements, for its batch.
   */
  async function alreadyHeld(data: InvitationJobData): Promise<{ skip?: SyncResult; burst: boolean; announced?: number }> {
    const own = eventVersion(data);
    if (own === undefined || !held) return { burst: false };
    const h = await held({ invitationId: data.invitationId, organizationId: data.organizationId });
    // Versions past our clock are no versions of Clerk's: an announcement by a receiver of an
    // older release (the job's own version stands in for it), a tombstone such a release
    // stamped with one (fetched: BAPI says what it is).
    const plausible = (v: number | undefined) => (v !== undefined && v <= now() + MAX_EVENT_CLOCK_SKEW_MS ? v : undefined);
    const announced = h.announced === undefined ? undefined : (plausible(h.announced) ?? own);
    const stored = h.stored && plausible(h.stored.updatedAt) !== undefined ? h.stored : undefined;
    if (holdsAnnounced({ ...h, stored, announced })) return { skip: { outcome: 'unchanged', gone: stored!.deleted, skipped: true }, burst: false };
    return { burst: h.recent >= BATCH_THRESHOLD, announced };
  }

  /**
   * Many invitations of the organization were announced at once (a bulk invite): ask for its
   * batch and wait for it once, instead of spending a call on this one alone. The job keeps
   * its attempts; when it runs again it fetches nothing if the batch published its version.
   */
  async function deferToBatch(data: InvitationJobData, job: Job<SyncJobData>, token: string | undefined): Promise<never> {
    await requestBatch!({ kind: 'batch', organizationId: data.organizationId, receivedAt: data.receivedAt, reason: data.reason });
    await job.updateData({ ...data, deferred: true });
    await job.moveToDelayed(now() + BATCH_DEFER_MS, token);
    stats.jobs.deferred++;
    throw new DelayedError();
  }

  /**
   * One BAPI call, timed and counted by status: its answer, or `NOT_FOUND` for a 404 (an
   * answer too). Any other failure steers the job through `onFailure`.
   */
  async function callBapi<T>(call: () => Promise<T>, job: Job<SyncJobData>): Promise<T | typeof NOT_FOUND> {
    called.add(job);
    const calledAt = performance.now();
    try {
      const answer = await call();
      stats.bapiCall(callerOf(job.data), '200', performance.now() - calledAt);
      return answer;
    } catch (err) {
      const kind = classifyError(err);
      stats.bapiCall(callerOf(job.data), statusOf(err), performance.now() - calledAt);
      if (kind !== 'not_found') return onFailure[kind](err as BapiError, job);
      return NOT_FOUND;
    }
  }

  /** What BAPI says about the invitation: its state, or that it is gone (404). */
  /**
   * @param announced the newest version any webhook announced (Redis): an event absorbed by
   * this job while it waited is not in its data, and BAPI must not be taken at an older word.
   */
  async function fetchState(data: InvitationJobData, job: Job<SyncJobData>, announced: number | undefined): Promise<InvitationState> {
    const got = await callBapi(() => bapi.getOrganizationInvitation(data.organizationId, data.invitationId), job);
    if (got === NOT_FOUND) {
      // No version of the event's: a tombstone keeps BAPI's (scripts/publish.lua).
      return { kind: 'gone', id: data.invitationId, organizationId: data.organizationId, observedAt: now(), source: JOB_SOURCE, receivedAt: data.receivedAt };
    }
    // What BAPI answers is the truth, also when its organization_id is not the job's (ids are
    // global): the publish rule compares it like any other answer.
    const wanted = Math.max(eventVersion(data) ?? -1, announced ?? -1);
    if (wanted >= 0 && got.invitation.updated_at < wanted) staleRead(data, job);
    return { kind: 'present', invitation: got.invitation, raw: got.raw, observedAt: got.receivedAt, source: JOB_SOURCE, receivedAt: data.receivedAt };
  }

  /**
   * The webhook announced a newer state than BAPI answered. Within `staleReadWaitMs` of the
   * event the job throws to be retried after its backoff (an attempt spent, no publish); later
   * it returns and the answer is published as the newest Clerk gave, so a forged or far-future
   * `updated_at` costs a bounded number of calls.
   */
  function staleRead(data: InvitationJobData, job: Job<SyncJobData>): void {
    if (now() - data.receivedAt < staleReadWaitMs) {
      stats.staleReads.retried++;
      log.debug({ jobId: job.id, invitationId: data.invitationId, attempt: job.attemptsMade + 1 }, 'BAPI answered an older state than the webhook announced; will fetch again');
      throw new StaleReadError(`BAPI answered an older state of ${data.invitationId} than the webhook announced`);
    }
    stats.staleReads.settled++;
    throttled(
      'warn',
      'stale-read',
      { jobId: job.id, invitationId: data.invitationId, waitedMs: now() - data.receivedAt },
      'BAPI kept answering an older state than the webhook announced; published its newest answer (counted in clerk_mirror_bapi_stale_reads_total)',
    );
  }

  async function fetchAndPublish(data: InvitationJobData, job: Job<SyncJobData>, announced: number | undefined): Promise<SyncResult> {
    const state = await fetchState(data, job, announced);
    // Clerk's clock may trail ours by a moment: a few tries after the backoff, then as it is.
    if (data.reason === 'expiry' && state.kind === 'present' && state.invitation.status === 'pending' && (state.invitation.expires_at ?? Infinity) <= now() && job.attemptsMade < EXPIRY_TRIES) {
      throw new StaleReadError(`Clerk still says ${data.invitationId} is pending past its expires_at`);
    }
    // Outside the BAPI error handling: a failed publish (Redis refused it) is not an answer
    // from Clerk, so it fails only this attempt and BullMQ retries the job with backoff.
    const outcome = await publish(state);
    // A 404 the publish rule refused: the shared state holds the invitation under another
    // organization (or, rarer, saw it present after the 404, which BAPI contradicted at once).
    if (state.kind === 'gone' && outcome === 'stale') {
      otherOrganization(data, job);
      return { gone: true, outcome, otherOrganization: true };
    }
    return { gone: state.kind === 'gone', outcome };
  }

  /**
   * The 404 says only that the invitation is not in the organization the event named: the
   * state stored under its own organization stands, and the invitation's own events (or
   * reconciliation) keep it current. Counted and logged once a minute at most, ids only.
   */
  function otherOrganization(data: InvitationJobData, job: Job<SyncJobData>): void {
    stats.suspectEvents.otherOrganization++;
    throttled(
      'warn',
      'other-organization',
      { jobId: job.id, invitationId: data.invitationId, organizationId: data.organizationId, reason: data.reason },
      'BAPI 404s the invitation under the organization its event named, but the shared state holds it under another: not tombstoned (an event naming the wrong organization: a Clerk bug or a leaked signing secret)',
    );
  }

  async function syncInvitation(data: InvitationJobData, job: Job<SyncJobData>, token: string | undefined): Promise<SyncResult> {
    const { skip, burst, announced } = await alreadyHeld(data);
    // Only new invitations: they sit at the top of the organization's list, newest first,
    // where a bulk invite's pages find them; accepted or revoked old ones may be anywhere.
    if (!skip && burst && requestBatch && !data.deferred && data.reason === 'organizationInvitation.created') await deferToBatch(data, job, token);
    const result = skip ?? (await fetchAndPublish(data, job, announced));
    stats.writes[result.gone && !result.skipped && !result.otherOrganization ? 'tombstoned' : result.outcome]++;
    if (result.skipped) stats.jobs.skipped++;
    log.debug({ jobId: job.id, invitationId: data.invitationId, ...result }, 'invitation synced');
    return result;
  }

  /**
   * One GET of the organization (any organization event: created, updated, deleted). When
   * Clerk has it, the shared state records that it exists (a list of it answers 200 even
   * without invitations); when it answers 404, the organization and every invitation of it
   * leave the shared state, as BAPI then 404s them all without sending an event for any.
   */
  async function syncOrganization(data: OrganizationJobData, job: Job<SyncJobData>): Promise<SyncResult> {
    const got = await callBapi(() => bapi.getOrganization(data.organizationId), job);
    if (got !== NOT_FOUND) {
      const outcome = await publish({ kind: 'organization', id: data.organizationId, gone: false, observedAt: got.receivedAt, source: 'webhook', receivedAt: data.receivedAt });
      if (data.reason === 'organization.deleted') log.info({ jobId: job.id, organizationId: data.organizationId }, 'Clerk still has the organization: its invitations stay');
      return { outcome, gone: false };
    }
    const removed = removeOrganization ? await removeOrganization(data.organizationId, data.receivedAt) : 0;
    stats.writes.tombstoned += removed;
    log.info({ jobId: job.id, organizationId: data.organizationId, removed, reason: data.reason }, 'organization deleted in Clerk: it and its invitations are tombstoned');
    return { outcome: removed > 0 ? 'updated' : 'unchanged', gone: true, removed };
  }

  async function syncDerived(data: DerivedJobData, job: Job<SyncJobData>): Promise<SyncResult> {
    if (!refreshDerived) return { outcome: 'unchanged', gone: false };
    const refreshed = await refreshDerived(data);
    // Most user events concern users who invited nobody: not worth an info line each.
    log[refreshed.matched ? 'info' : 'debug']({ jobId: job.id, reason: data.reason, field: data.field, ...refreshed }, 'refreshed the invitations a changed role or user derives fields from');
    return { outcome: refreshed.matched ? 'updated' : 'unchanged', gone: false, refreshed };
  }

  async function syncBatch(data: BatchJobData, job: Job<SyncJobData>): Promise<SyncResult> {
    if (!fetchBatch) return { outcome: 'unchanged', gone: false };
    const batch = await fetchBatch(data);
    stats.batches.pages += batch.pages;
    stats.batches.published += batch.published;
    log.debug({ jobId: job.id, organizationId: data.organizationId, ...batch }, 'fetched the announced invitations of an organization through its list');
    return { outcome: batch.published ? 'updated' : 'unchanged', gone: false, batch };
  }

  return async function process(job: Job<SyncJobData>, token?: string): Promise<SyncResult> {
    try {
      return await processJob(job, token);
    } finally {
      // Not awaited by the job's outcome: a refund lost to a Redis error costs one token.
      // BullMQ's limiter took the token when the job became active.
      if (refundBudget && !called.has(job)) refundBudget(job.processedOn ?? now()).catch((err: unknown) => throttled('warn', 'refund', { err: (err as Error).message }, 'cannot give back an unused BAPI token'));
    }
  };

  async function processJob(job: Job<SyncJobData>, token: string | undefined): Promise<SyncResult> {
    const parsed = syncJobSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`malformed job data: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    const data = parsed.data;
    const result = isInvitationJob(data)
      ? await syncInvitation(data, job, token)
      : data.kind === 'organization'
        ? await syncOrganization(data, job)
        : data.kind === 'batch'
          ? await syncBatch(data, job)
          : await syncDerived(data, job);
    stats.jobs.completed++;
    stats.lag(now() - data.receivedAt);
    return result;
  }
}

/** Whose request a job's call is, for `/metrics`: the cause that queued it. */
function callerOf(data: SyncJobData): BapiCallerName {
  if (!isInvitationJob(data)) return data.kind === 'organization' ? 'organization' : data.kind === 'batch' ? 'batch' : 'derived';
  if (data.reason === 'expiry' || data.reason === 'reconcile') return data.reason;
  // Single re-fetches a changed role or user queued (worker/derived.ts).
  if (data.reason.startsWith('role.') || data.reason.startsWith('user.')) return 'derived';
  return 'webhook';
}

/**
 * The job's event version, when it may be one of Clerk's: a job queued by a receiver of an
 * older release may carry one far past its receipt, which BAPI never answers.
 */
function eventVersion(data: InvitationJobData): number | undefined {
  return plausibleVersion(data.eventUpdatedAt, data.receivedAt);
}
