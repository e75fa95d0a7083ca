import { UnrecoverableError, Worker, type Job, type Queue } from 'bullmq';
import { BapiRateLimitedError, classifyError, type BapiError } from '../clerk/bapi-errors.ts';
import type { BapiClient } from '../clerk/client.ts';
import type { Logger } from '../logger.ts';
import type { InvitationWrite, MirrorWriter, UpsertOutcome } from '../mirror/upsert.ts';
import { syncJobSchema, type SyncJobData } from '../queue/job.ts';
import type { PipelineStats } from '../stats.ts';

export interface ProcessorDeps {
  bapi: BapiClient;
  /** A MirrorWriter, or a GroupCommitWriter that commits concurrent jobs' writes together. */
  writer: Pick<MirrorWriter, 'storedVersion'> & { write(w: InvitationWrite): UpsertOutcome | Promise<UpsertOutcome> };
  /** The queue the worker consumes: a 429 pauses all of it, for every worker. */
  queue: Queue<SyncJobData>;
  log: Logger;
  stats: PipelineStats;
  /** The newest version webhooks announced per invitation; without it every job fetches. */
  announced?: { get(invitationId: string): Promise<number | undefined> };
  now?: () => number;
}

/** What one job did, kept as the job's return value for inspection. */
export interface SyncResult {
  outcome: UpsertOutcome;
  gone: boolean;
  /** True when the mirror already held the event's version and BAPI was not called. */
  skipped?: boolean;
}

type FailureHandler = (err: BapiError, job: Job<SyncJobData>) => Promise<never>;

/**
 * Fetches the canonical invitation and writes it. What a failure does to the job depends on
 * its kind, one handler each: a 404 is an answer (tombstone), a 429 pauses the whole queue
 * without spending an attempt, transient errors retry with backoff, configuration errors
 * fail at once and loudly.
 */
export function createProcessor({ bapi, writer, queue, log, stats, announced, now = Date.now }: ProcessorDeps) {
  let warnedAboutCredentials = false;

  const onFailure: Record<'rate_limited' | 'retryable' | 'fatal', FailureHandler> = {
    async rate_limited(err) {
      const waitMs = err instanceof BapiRateLimitedError ? err.retryAfterMs : 1000;
      stats.rateLimitWait(waitMs);
      log.warn({ waitMs }, 'BAPI answered 429: pausing the sync queue');
      await queue.rateLimit(waitMs);
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
   * Late or duplicated events about states the mirror already holds (or has passed) need no
   * fetch: coalescing merges only events that wait together, this catches the rest.
   * Reconciliation jobs (no event version) always fetch.
   */
  async function alreadyHeld(data: SyncJobData): Promise<SyncResult | undefined> {
    if (data.eventUpdatedAt === undefined || !announced) return undefined;
    // The mirror first: an invitation it has never held (every new one) needs no Redis call.
    const stored = writer.storedVersion(data.invitationId);
    if (!stored) return undefined;
    const newestAnnounced = await announced.get(data.invitationId);
    return newestAnnounced !== undefined && stored.updatedAt >= newestAnnounced ? { outcome: 'unchanged', gone: stored.deleted, skipped: true } : undefined;
  }

  /**
   * What BAPI says about the invitation: its state, or that it is gone (404). Any other
   * answer steers the job through `onFailure`.
   */
  async function fetchState(data: SyncJobData, job: Job<SyncJobData>): Promise<InvitationWrite> {
    const calledAt = performance.now();
    try {
      const got = await bapi.getOrganizationInvitation(data.organizationId, data.invitationId);
      stats.bapiCall('200', performance.now() - calledAt);
      return { kind: 'present', invitation: got.invitation, raw: got.raw, observedAt: got.receivedAt, source: sourceOf(data) };
    } catch (err) {
      const kind = classifyError(err);
      stats.bapiCall(String((err as BapiError).status ?? kind), performance.now() - calledAt);
      if (kind !== 'not_found') return onFailure[kind](err as BapiError, job);
      return { kind: 'gone', id: data.invitationId, organizationId: data.organizationId, knownUpdatedAt: data.eventUpdatedAt, observedAt: now(), source: sourceOf(data) };
    }
  }

  async function fetchAndWrite(data: SyncJobData, job: Job<SyncJobData>): Promise<SyncResult> {
    const state = await fetchState(data, job);
    // Outside the BAPI error handling: a failed write (a busy or full disk) is not an answer
    // from Clerk, so it fails only this attempt and BullMQ retries the job with backoff.
    return { gone: state.kind === 'gone', outcome: await writer.write(state) };
  }

  return async function process(job: Job<SyncJobData>): Promise<SyncResult> {
    const parsed = syncJobSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`malformed job data: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    const data = parsed.data;
    const result = (await alreadyHeld(data)) ?? (await fetchAndWrite(data, job));
    stats.writes[result.gone && !result.skipped ? 'tombstoned' : result.outcome]++;
    if (result.skipped) stats.jobs.skipped++;
    stats.jobs.completed++;
    stats.lag(now() - data.receivedAt);
    log.debug({ jobId: job.id, invitationId: data.invitationId, ...result }, 'invitation synced');
    return result;
  };
}

function sourceOf(data: SyncJobData) {
  return data.reason === 'reconcile' ? ('reconcile' as const) : ('webhook' as const);
}
