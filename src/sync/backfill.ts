import type { BapiClient } from '../clerk/client.ts';
import type { Logger } from '../logger.ts';
import type { MirrorConnection } from '../mirror/open.ts';
import { MirrorWriter, type InvitationWrite, type UpsertOutcome } from '../mirror/upsert.ts';
import { BapiCaller } from './bapi-call.ts';
import { InvitationLister, type ListMode, type ListPosition } from './lister.ts';
import { silentProgress, type ProgressReporter } from './progress.ts';
import type { SharedRateLimiter } from './rate-limiter.ts';
import { STATE_KEYS, SyncState } from './state.ts';

export interface BackfillOptions {
  conn: MirrorConnection;
  bapi: BapiClient;
  limiter: SharedRateLimiter;
  log: Logger;
  /** Aborting stops before the next request; pages already answered are committed. */
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

export type RowCounts = Record<UpsertOutcome, number>;

export interface BackfillSummary {
  status: 'completed' | 'interrupted' | 'failed';
  mode: ListMode | undefined;
  /** Where this run started, when it resumed a previous one. */
  resumedFrom: ListPosition | undefined;
  pages: number;
  rows: RowCounts;
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

/**
 * Pages every invitation of the instance into the mirror through the worker's upsert rule,
 * one transaction per page (source `backfill`), under the shared BAPI budget. The cursor is
 * saved in the page's transaction, so an interrupted or crashed run resumes where it
 * stopped; a completed run clears it and records its summary.
 */
export async function runBackfill(o: BackfillOptions): Promise<BackfillSummary> {
  const now = o.now ?? Date.now;
  const started = now();
  const state = new SyncState(o.conn);
  const writer = new MirrorWriter(o.conn);
  const caller = new BapiCaller({ limiter: o.limiter, log: o.log, signal: o.signal, retryForMs: o.retryForMs, now });
  const lister = new InvitationLister({ bapi: o.bapi, caller, log: o.log, pageSize: o.pageSize, concurrency: o.concurrency, signal: o.signal });
  const progress = o.progress ?? silentProgress;

  if (o.restart) state.delete(STATE_KEYS.backfillCursor);
  const saved = state.get<SavedCursor>(STATE_KEYS.backfillCursor)?.value;
  const resumedFrom = saved?.position;
  const startedAt = saved?.startedAt ?? started;
  if (resumedFrom) o.log.info({ mode: resumedFrom.mode, next: resumedFrom.next }, 'resuming the backfill where it stopped');

  const rows: RowCounts = { inserted: 0, updated: 0, unchanged: 0, stale: 0 };
  let pages = 0;
  const summary = (status: BackfillSummary['status'], error?: string): BackfillSummary => ({
    status,
    mode: lister.mode,
    resumedFrom,
    pages,
    rows: { ...rows },
    requests: caller.counters.requests,
    rateLimited: caller.counters.rateLimited,
    retried: caller.counters.retried,
    durationMs: now() - started,
    ...(error === undefined ? {} : { error }),
  });

  try {
    await lister.run(
      resumedFrom,
      (page, cursor) => {
        const writes: InvitationWrite[] = page.items.map((invitation) => ({ kind: 'present', invitation, observedAt: page.receivedAt, source: 'backfill' }));
        const outcomes = state.transaction(() => {
          const out = writer.writeMany(writes);
          if (cursor) state.set(STATE_KEYS.backfillCursor, { position: cursor, startedAt } satisfies SavedCursor, now());
          return out;
        });
        for (const r of outcomes) rows[r]++;
        pages++;
      },
      (p) => progress.update(p),
    );
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
  progress.finish();
  const s = summary('completed');
  state.transaction(() => {
    state.delete(STATE_KEYS.backfillCursor);
    state.set(STATE_KEYS.backfillLast, { at: now(), startedAt, summary: s }, now());
  });
  o.log.info({ ...s }, 'backfill completed');
  return s;
}

/** Multi-line text of a summary, for the command's exit. */
export function formatBackfillSummary(s: BackfillSummary): string {
  const lines = [
    `backfill ${s.status}${s.mode ? ` (${s.mode === 'instance' ? 'instance-wide list' : 'organization by organization'})` : ''}${s.resumedFrom ? `, resumed at ${s.resumedFrom.mode === 'instance' ? 'offset' : 'organization'} ${s.resumedFrom.next}` : ''}`,
    `  pages      ${s.pages}`,
    `  rows       ${s.rows.inserted} inserted, ${s.rows.updated} updated, ${s.rows.unchanged} unchanged, ${s.rows.stale} older than the mirror`,
    `  requests   ${s.requests} (${s.rateLimited} answered 429, ${s.retried} retried)`,
    `  duration   ${(s.durationMs / 1000).toFixed(1)} s`,
  ];
  if (s.error) lines.push(`  error      ${s.error}`);
  if (s.status !== 'completed') lines.push('  run `clerk-invitation-mirror backfill` again to resume');
  return lines.join('\n');
}
