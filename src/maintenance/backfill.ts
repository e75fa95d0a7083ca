import type { BapiClient } from '../bapi/client.ts';
import type { InvitationJSON } from '../clerk/types.ts';
import type { Logger } from '../logger.ts';
import type { PipelineStats } from '../stats.ts';
import { type InvitationState, type PublishOutcome, type StatePublisher } from '../state/publisher.ts';
import { RECORDS, type SharedState } from '../state/shared-state.ts';
import { runCaller } from '../bapi/caller.ts';
import { InvitationLister, type ListMode, type ListPosition } from './lister.ts';
import { publishOrganizations } from './organizations.ts';
import { fullReporter, listingPhase, PHASES, type ProgressReporter } from './progress.ts';
import type { SharedRateLimiter } from '../bapi/rate-limiter.ts';

export interface BackfillOptions {
  state: SharedState;
  publisher: StatePublisher;
  bapi: BapiClient;
  limiter: SharedRateLimiter;
  log: Logger;
  /** Where its BAPI requests are counted (`/metrics`). */
  stats?: PipelineStats;
  /** Aborting stops before the next request; pages already answered are published. */
  signal?: AbortSignal;
  /** @defaultValue 500 */
  pageSize?: number;
  /** @defaultValue 4 */
  concurrency?: number;
  /** Ignore a saved cursor and start from the first page. @defaultValue false */
  restart?: boolean;
  progress?: ProgressReporter;
  /** How long one call retries transient failures before the run stops (cursor kept). */
  retryForMs?: number;
  now?: () => number;
}

export type RowCounts = Record<PublishOutcome, number>;

export interface BackfillSummary {
  status: 'completed' | 'interrupted' | 'failed';
  mode: ListMode | undefined;
  /** Where this run started, when it resumed a previous one. */
  resumedFrom: ListPosition | undefined;
  pages: number;
  rows: RowCounts;
  /** Organizations listed (each one's existence published), and whether the listing was complete. */
  organizations: { listed: number; complete: boolean };
  requests: number;
  rateLimited: number;
  retried: number;
  durationMs: number;
  /** Why it stopped, for `failed`. */
  error?: string;
}

interface SavedCursor {
  position: ListPosition;
  startedAt: number;
}

/** The states of a list page, under the publish rule of every state. */
export function pageStates(items: readonly InvitationJSON[], observedAt: number, source: 'backfill' | 'reconcile'): InvitationState[] {
  return items.map((invitation) => ({ kind: 'present', invitation, observedAt, source }));
}

/**
 * Pages every invitation of the instance into the shared state through the publish rule,
 * one script run per page (source `backfill`), under the shared BAPI budget, so every
 * replica receives it, then lists the organizations, so that an unknown one answers 404 as
 * in BAPI (maintenance/organizations.ts). The cursor is saved in the page's script run, so
 * an interrupted or crashed run resumes where it stopped; a completed run clears it, records
 * its summary and marks the state filled. Progress belongs to one epoch: if Redis loses the
 * state meanwhile, the run stops and the next one starts over.
 */
export async function runBackfill(o: BackfillOptions): Promise<BackfillSummary> {
  const now = o.now ?? Date.now;
  const started = now();
  const progress = fullReporter(o.progress);
  const caller = runCaller({ ...o, now }, 'backfill', progress);
  const lister = new InvitationLister({ bapi: o.bapi, caller, log: o.log, pageSize: o.pageSize, concurrency: o.concurrency, signal: o.signal });
  const rows: RowCounts = { inserted: 0, updated: 0, unchanged: 0, stale: 0 };
  let pages = 0;
  let resumedFrom: ListPosition | undefined;
  const organizations = { listed: 0, complete: false };
  const summary = (status: BackfillSummary['status'], error?: string): BackfillSummary => ({
    status,
    mode: lister.mode,
    resumedFrom,
    pages,
    rows: { ...rows },
    organizations: { ...organizations },
    requests: caller.counters.requests,
    rateLimited: caller.counters.rateLimited,
    retried: caller.counters.retried,
    durationMs: now() - started,
    ...(error === undefined ? {} : { error }),
  });

  try {
    const { epoch } = await o.state.ensure();
    if (o.restart) await o.state.writeRecords(epoch, { [RECORDS.backfillCursor]: undefined });
    const saved = await o.state.record<SavedCursor>(RECORDS.backfillCursor);
    resumedFrom = saved?.position;
    const startedAt = saved?.startedAt ?? started;
    if (resumedFrom) o.log.info({ mode: resumedFrom.mode, next: resumedFrom.next }, 'resuming the backfill where it stopped');

    const onProgress = listingPhase(progress);
    await lister.run(
      resumedFrom,
      async (page, cursor) => {
        const { outcomes } = await o.publisher.publish(pageStates(page.items, page.receivedAt, 'backfill'), {
          expectEpoch: epoch,
          ...(cursor ? { record: { name: RECORDS.backfillCursor, value: { position: cursor, startedAt } satisfies SavedCursor } } : {}),
        });
        for (const r of outcomes) rows[r]++;
        pages++;
      },
      onProgress,
    );
    // After the invitations, so that a resumed run needs its cursor only for them.
    progress.phase(PHASES.organizations);
    const pass = await publishOrganizations({ bapi: o.bapi, caller, publisher: o.publisher, state: o.state, log: o.log, epoch, source: 'backfill', now });
    Object.assign(organizations, { listed: pass.listed, complete: pass.complete });
    const s = summary('completed');
    await o.state.writeRecords(epoch, { [RECORDS.backfillCursor]: undefined, [RECORDS.backfillLast]: { at: now(), startedAt, summary: s } }, { filled: true });
    progress.finish();
    o.log.info({ ...s }, 'backfill completed');
    return s;
  } catch (err) {
    progress.finish();
    if (o.signal?.aborted) {
      const s = summary('interrupted');
      o.log.warn({ ...s }, 'backfill interrupted; run it again to resume');
      return s;
    }
    const s = summary('failed', (err as Error).message);
    o.log.error({ ...s }, 'backfill stopped; its cursor is saved, run it again to resume');
    return s;
  }
}

/** Multi-line text of a summary, for the command's exit. */
export function formatBackfillSummary(s: BackfillSummary): string {
  const lines = [
    `backfill ${s.status}${s.mode ? ` (${s.mode === 'instance' ? 'instance-wide list' : 'organization by organization'})` : ''}${s.resumedFrom ? `, resumed at ${s.resumedFrom.mode === 'instance' ? 'offset' : 'organization'} ${s.resumedFrom.next}` : ''}`,
    `  pages      ${s.pages}`,
    `  rows       ${s.rows.inserted} inserted, ${s.rows.updated} updated, ${s.rows.unchanged} unchanged, ${s.rows.stale} older than the shared state`,
    `  orgs       ${s.organizations.listed} listed${s.status === 'completed' && !s.organizations.complete ? ' (they kept changing: unknown organizations still answer 200 empty)' : ''}`,
    `  requests   ${s.requests} (${s.rateLimited} answered 429, ${s.retried} retried)`,
    `  duration   ${(s.durationMs / 1000).toFixed(1)} s`,
  ];
  if (s.error) lines.push(`  error      ${s.error}`);
  if (s.status !== 'completed') lines.push('  run `clerk-invitation-mirror backfill` again to resume');
  return lines.join('\n');
}
