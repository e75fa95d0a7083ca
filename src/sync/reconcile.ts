import { BapiNotFoundError } from '../clerk/bapi-errors.ts';
import type { BapiClient } from '../clerk/client.ts';
import type { InvitationJSON } from '../clerk/types.ts';
import type { Logger } from '../logger.ts';
import type { MirrorConnection } from '../mirror/open.ts';
import { MirrorWriter, type InvitationWrite, type UpsertOutcome } from '../mirror/upsert.ts';
import { BapiCaller } from './bapi-call.ts';
import { InvitationLister, type ListMode } from './lister.ts';
import { silentProgress, type ProgressReporter } from './progress.ts';
import type { SharedRateLimiter } from './rate-limiter.ts';
import { STATE_KEYS, SyncState, type LastReconcile } from './state.ts';

export const DRIFT_KINDS = ['missing', 'outdated', 'expired', 'gone'] as const;
/**
 * - `missing`: in Clerk, not in the mirror (or only as a tombstone).
 * - `outdated`: the mirror held an older state (a lost or late webhook).
 * - `expired`: the mirror said pending, Clerk says expired (Clerk sends no expiry event).
 * - `gone`: in the mirror, 404 in Clerk (deleted organization): tombstoned.
 */
export type DriftKind = (typeof DRIFT_KINDS)[number];

export interface ReconcileOptions {
  conn: MirrorConnection;
  bapi: BapiClient;
  limiter: SharedRateLimiter;
  log: Logger;
  signal?: AbortSignal;
  /** Report only: every write is rolled back. @defaultValue false */
  dryRun?: boolean;
  /** Rows not confirmed by Clerk for longer than this are re-fetched. @defaultValue 86_400_000 (24 h) */
  maxAgeMs?: number;
  /**
   * Compare with BAPI's lists (full pass, ~1 request per 500 invitations). Off: only re-fetch
   * pending invitations past `expires_at` and rows older than `maxAgeMs`, one request each.
   * @defaultValue true
   */
  lists?: boolean;
  pageSize?: number;
  concurrency?: number;
  progress?: ProgressReporter;
  retryForMs?: number;
  now?: () => number;
}

export interface ReconcileReport {
  status: 'completed' | 'interrupted' | 'failed';
  dryRun: boolean;
  mode: ListMode | 'targeted' | undefined;
  /** Invitations seen in BAPI's lists. */
  listed: number;
  /** Rows re-fetched one by one (not seen in the lists, pending past expiry, or unconfirmed too long). */
  refetched: number;
  /** Per kind: drift found, and repaired (0 in a dry run). */
  drift: Record<DriftKind, { found: number; repaired: number }>;
  requests: number;
  rateLimited: number;
  durationMs: number;
  error?: string;
}

interface Stored {
  status: string | null;
  expires_at: number | null;
  deleted_at: number | null;
  updated_at: number;
}

class Rollback extends Error {}

/**
 * Makes the mirror match Clerk: a pass over BAPI's lists through the upsert rule (source
 * `reconcile`), then a single GET for every live row the pass did not see (404: tombstone),
 * plus pending rows past `expires_at` and rows unconfirmed for longer than `maxAgeMs`.
 */
export async function runReconcile(o: ReconcileOptions): Promise<ReconcileReport> {
  const now = o.now ?? Date.now;
  const started = now();
  const dryRun = o.dryRun ?? false;
  const maxAgeMs = o.maxAgeMs ?? 86_400_000;
  const state = new SyncState(o.conn);
  const writer = new MirrorWriter(o.conn);
  const caller = new BapiCaller({ limiter: o.limiter, log: o.log, signal: o.signal, retryForMs: o.retryForMs, now });
  const selectStored = o.conn.sqlite.prepare<[string], Stored>('SELECT status, expires_at, deleted_at, updated_at FROM organization_invitations WHERE id = ?');
  const drift = Object.fromEntries(DRIFT_KINDS.map((k) => [k, { found: 0, repaired: 0 }])) as ReconcileReport['drift'];
  const seen = new Set<string>();
  let listed = 0;
  let refetched = 0;
  let mode: ReconcileReport['mode'];

  /** Writes (or, in a dry run, tries and rolls back) and tallies drift by kind. */
  const apply = (writes: InvitationWrite[]) => {
    let kinds: (DriftKind | undefined)[] = [];
    try {
      state.transaction(() => {
        const before = writes.map((w) => selectStored.get(w.kind === 'present' ? w.invitation.id : w.id));
        const outcomes = writer.writeMany(writes);
        kinds = writes.map((w, i) => classify(w, before[i], outcomes[i]!));
        if (dryRun) throw new Rollback();
      });
    } catch (err) {
      if (!(err instanceof Rollback)) throw err;
    }
    for (const k of kinds) {
      if (!k) continue;
      drift[k].found++;
      if (!dryRun) drift[k].repaired++;
    }
  };

  const report = (status: ReconcileReport['status'], error?: string): ReconcileReport => ({
    status,
    dryRun,
    mode,
    listed,
    refetched,
    drift: structuredClone(drift),
    requests: caller.counters.requests,
    rateLimited: caller.counters.rateLimited,
    durationMs: now() - started,
    ...(error === undefined ? {} : { error }),
  });

  try {
    const listsStartedAt = now();
    let listComplete = false;
    if (o.lists ?? true) {
      const lister = new InvitationLister({ bapi: o.bapi, caller, log: o.log, pageSize: o.pageSize, concurrency: o.concurrency, signal: o.signal });
      await lister.run(
        undefined,
        (page) => {
          for (const inv of page.items) seen.add(inv.id);
          listed += page.items.length;
          apply(page.items.map((invitation) => ({ kind: 'present', invitation, observedAt: page.receivedAt, source: 'reconcile' })));
        },
        (p) => (o.progress ?? silentProgress).update(p),
      );
      (o.progress ?? silentProgress).finish();
      mode = lister.mode;
      listComplete = true;
    } else {
      mode = 'targeted';
    }

    // Rows a complete pass did not see may be gone; without one, only the suspicious ones.
    const t = now();
    const candidates = (
      o.conn.sqlite
        .prepare<[number, number, number, number], { id: string; organization_id: string; updated_at: number; status: string | null; expires_at: number | null; confirmed_at: number }>(
          `SELECT id, organization_id, updated_at, status, expires_at, confirmed_at FROM organization_invitations
           WHERE deleted_at IS NULL AND confirmed_at < ? AND (? OR (status = 'pending' AND expires_at <= ?) OR confirmed_at < ?)`,
        )
        .all(listsStartedAt, listComplete ? 1 : 0, t, t - maxAgeMs) as { id: string; organization_id: string; updated_at: number }[]
    ).filter((r) => !seen.has(r.id));

    let next = 0;
    let failure: { err: unknown } | undefined;
    const loop = async () => {
      while (!failure && next < candidates.length) {
        const row = candidates[next++]!;
        refetched++;
        let write: InvitationWrite;
        try {
          const got = await caller.call('re-fetch invitation', () => o.bapi.getOrganizationInvitation(row.organization_id, row.id));
          write = { kind: 'present', invitation: got.invitation as InvitationJSON, raw: got.raw, observedAt: got.receivedAt, source: 'reconcile' };
        } catch (err) {
          if (!(err instanceof BapiNotFoundError)) throw err;
          write = { kind: 'gone', id: row.id, organizationId: row.organization_id, knownUpdatedAt: row.updated_at, observedAt: now(), source: 'reconcile' };
        }
        apply([write]);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, o.concurrency ?? 4) }, () => loop().catch((err: unknown) => void (failure ??= { err }))));
    if (failure) throw failure.err;
  } catch (err) {
    const aborted = o.signal?.aborted ?? false;
    const r = report(aborted ? 'interrupted' : 'failed', aborted ? undefined : (err as Error).message);
    o.log[aborted ? 'warn' : 'error']({ ...r }, aborted ? 'reconciliation interrupted' : 'reconciliation failed');
    return r;
  }

  const r = report('completed');
  if (!dryRun) state.set(STATE_KEYS.reconcileLast, { at: now(), report: r } satisfies LastReconcile, now());
  o.log.info({ ...r }, dryRun ? 'reconciliation dry run: nothing written' : 'reconciliation completed');
  return r;
}

function classify(w: InvitationWrite, before: Stored | undefined, outcome: UpsertOutcome): DriftKind | undefined {
  if (outcome === 'unchanged' || outcome === 'stale') return undefined;
  if (w.kind === 'gone') return before && before.deleted_at === null ? 'gone' : undefined;
  if (!before || before.deleted_at !== null) return 'missing';
  if (before.status === 'pending' && w.invitation.status === 'expired') return 'expired';
  return 'outdated';
}

/** Multi-line text of a report, for the command's exit. */
export function formatReconcileReport(r: ReconcileReport): string {
  const verb = r.dryRun ? 'would repair' : 'repaired';
  const lines = [
    `reconciliation ${r.status}${r.dryRun ? ' (dry run: nothing written)' : ''}${r.mode ? `, ${r.mode === 'targeted' ? 'targeted re-fetches only' : r.mode === 'instance' ? 'instance-wide list' : 'organization by organization'}` : ''}`,
    `  listed     ${r.listed} invitation(s); re-fetched ${r.refetched} one by one`,
    ...DRIFT_KINDS.map((k) => `  ${k.padEnd(10)} ${r.drift[k].found} found, ${r.dryRun ? r.drift[k].found : r.drift[k].repaired} ${verb}`),
    `  requests   ${r.requests} (${r.rateLimited} answered 429)`,
    `  duration   ${(r.durationMs / 1000).toFixed(1)} s`,
  ];
  if (r.error) lines.push(`  error      ${r.error}`);
  return lines.join('\n');
}
