import { BapiNotFoundError } from '../bapi/errors.ts';
import type { BapiClient } from '../bapi/client.ts';
import type { InvitationJSON } from '../clerk/types.ts';
import type { Logger } from '../logger.ts';
import type { PipelineStats } from '../stats.ts';
import type { StoredState } from '../state/codec.ts';
import type { InvitationState, PublishOutcome, StatePublisher } from '../state/publisher.ts';
import { RECORDS, type SharedState } from '../state/shared-state.ts';
import { runCaller } from '../bapi/caller.ts';
import { forEachInParallel } from '../bapi/pool.ts';
import { pageStates } from './backfill.ts';
import { InvitationLister, type ListMode } from './lister.ts';
import { publishOrganizations, type OrganizationPassReport } from './organizations.ts';
import { fullReporter, listingPhase, PHASES, type ProgressReporter } from './progress.ts';
import type { SharedRateLimiter } from '../bapi/rate-limiter.ts';

export const DRIFT_KINDS = ['missing', 'outdated', 'content', 'expired', 'gone'] as const;
/**
 * - `missing`: in Clerk, not in the shared state (or only as a tombstone).
 * - `outdated`: the shared state held an older state (a lost or late webhook).
 * - `content`: the same `updated_at`, other content (a renamed role, two changes in one
 *   millisecond: Clerk changed it without moving `updated_at`).
 * - `expired`: the shared state said pending, Clerk says expired (Clerk sends no expiry
 *   event), whether or not Clerk moved `updated_at`.
 * - `gone`: in the shared state, 404 in Clerk (deleted organization): tombstoned.
 */
export type DriftKind = (typeof DRIFT_KINDS)[number];

export interface ReconcileOptions {
  state: SharedState;
  publisher: StatePublisher;
  bapi: BapiClient;
  limiter: SharedRateLimiter;
  log: Logger;
  /** Where its BAPI requests are counted (`/metrics`). */
  stats?: PipelineStats;
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
  /**
   * The organizations' pass (with the lists only): how many Clerk listed, how many the shared
   * state did not know, how many it held as existing that Clerk 404s (found, or repaired).
   */
  organizations: Omit<OrganizationPassReport, 'complete'> | undefined;
  requests: number;
  rateLimited: number;
  durationMs: number;
  error?: string;
}

/** What the last successful reconciliation found; also what `reconcile` prints. */
export interface LastReconcile {
  /** When it finished (ms since the epoch, our clock). */
  at: number;
  report: unknown;
}

/** When the last successful reconciliation of the current state finished, or undefined. */
export async function lastReconcileAt(state: SharedState): Promise<number | undefined> {
  return (await state.record<LastReconcile>(RECORDS.reconcileLast))?.at;
}

/**
 * Makes the shared state match Clerk, so that every replica gets the repair: a pass over
 * BAPI's lists through the publish rule (source `reconcile`), then a single GET for every
 * live invitation the pass did not see (404: tombstone), plus pending ones past `expires_at`
 * and ones unconfirmed for longer than `maxAgeMs`. With the lists it also lists the
 * organizations (maintenance/organizations.ts). A complete pass also marks the state filled.
 */
export async function runReconcile(o: ReconcileOptions): Promise<ReconcileReport> {
  const now = o.now ?? Date.now;
  const started = now();
  const dryRun = o.dryRun ?? false;
  const maxAgeMs = o.maxAgeMs ?? 86_400_000;
  const progress = fullReporter(o.progress);
  const caller = runCaller({ ...o, now }, 'reconcile', progress);
  const drift = Object.fromEntries(DRIFT_KINDS.map((k) => [k, { found: 0, repaired: 0 }])) as ReconcileReport['drift'];
  const seen = new Set<string>();
  let listed = 0;
  let refetched = 0;
  let mode: ReconcileReport['mode'];
  let organizations: ReconcileReport['organizations'];

  const report = (status: ReconcileReport['status'], error?: string): ReconcileReport => ({
    status,
    dryRun,
    mode,
    listed,
    refetched,
    drift: structuredClone(drift),
    organizations: organizations && { ...organizations },
    requests: caller.counters.requests,
    rateLimited: caller.counters.rateLimited,
    durationMs: now() - started,
    ...(error === undefined ? {} : { error }),
  });

  try {
    const { epoch } = await o.state.ensure();
    /** Publishes (or, in a dry run, only compares) and tallies drift by kind. */
    const apply = async (states: InvitationState[]) => {
      const { outcomes, previous } = await o.publisher.publish(states, { dryRun, withPrevious: true, expectEpoch: epoch });
      states.forEach((s, i) => {
        const k = classify(s, previous![i], outcomes[i]!);
        if (!k) return;
        drift[k].found++;
        if (!dryRun) drift[k].repaired++;
      });
    };

    const listsStartedAt = now();
    let listComplete = false;
    if (o.lists ?? true) {
      const lister = new InvitationLister({ bapi: o.bapi, caller, log: o.log, pageSize: o.pageSize, concurrency: o.concurrency, signal: o.signal });
      const onProgress = listingPhase(progress);
      await lister.run(
        undefined,
        async (page) => {
          for (const inv of page.items) seen.add(inv.id);
          listed += page.items.length;
          await apply(pageStates(page.items, page.receivedAt, 'reconcile'));
        },
        onProgress,
      );
      mode = lister.mode;
      listComplete = true;
      progress.phase(PHASES.organizations);
      const pass = await publishOrganizations({ bapi: o.bapi, caller, publisher: o.publisher, state: o.state, log: o.log, epoch, source: 'reconcile', dryRun, confirmUnlisted: true, now });
      organizations = { listed: pass.listed, missing: pass.missing, gone: pass.gone };
    } else {
      mode = 'targeted';
    }

    // Invitations a complete pass did not see may be gone; without one, only the suspicious ones.
    const t = now();
    const suspicious = (s: StoredState) =>
      !s.deleted &&
      s.confirmedAt < listsStartedAt &&
      !seen.has(s.id) &&
      (listComplete || (s.fields.status === 'pending' && s.fields.expiresAt !== null && s.fields.expiresAt <= t) || s.confirmedAt < t - maxAgeMs);
    const candidates: StoredState[] = [];
    progress.phase(PHASES.scan);
    let scanned = 0;
    for await (const batch of o.state.scan()) {
      for (const s of batch) if (suspicious(s)) candidates.push(s);
      progress.update({ unit: 'rows', done: (scanned += batch.length) });
    }

    progress.phase(PHASES.oneByOne);
    let checked = 0;
    progress.update({ unit: 'invitations', done: 0, total: candidates.length });
    await forEachInParallel(Math.max(1, o.concurrency ?? 4), candidates, async (row) => {
      refetched++;
      let state: InvitationState;
      try {
        const got = await caller.call('re-fetch invitation', () => o.bapi.getOrganizationInvitation(row.fields.organizationId, row.id));
        state = { kind: 'present', invitation: got.invitation as InvitationJSON, raw: got.raw, observedAt: got.receivedAt, source: 'reconcile' };
      } catch (err) {
        if (!(err instanceof BapiNotFoundError)) throw err;
        state = { kind: 'gone', id: row.id, organizationId: row.fields.organizationId, knownUpdatedAt: row.updatedAt, observedAt: now(), source: 'reconcile' };
      }
      await apply([state]);
      progress.update({ unit: 'invitations', done: ++checked, total: candidates.length });
    });

    const r = report('completed');
    if (!dryRun) await o.state.writeRecords(epoch, { [RECORDS.reconcileLast]: { at: now(), report: r } satisfies LastReconcile }, { filled: listComplete });
    progress.finish();
    o.log.info({ ...r }, dryRun ? 'reconciliation dry run: nothing written' : 'reconciliation completed');
    return r;
  } catch (err) {
    progress.finish();
    const aborted = o.signal?.aborted ?? false;
    const r = report(aborted ? 'interrupted' : 'failed', aborted ? undefined : (err as Error).message);
    o.log[aborted ? 'warn' : 'error']({ ...r }, aborted ? 'reconciliation interrupted' : 'reconciliation failed');
    return r;
  }
}

function classify(s: InvitationState, before: Omit<StoredState, 'raw'> | undefined, outcome: PublishOutcome): DriftKind | undefined {
  if (outcome === 'unchanged' || outcome === 'stale') return undefined;
  if (s.kind === 'gone') return before && !before.deleted ? 'gone' : undefined;
  if (!before || before.deleted) return 'missing';
  if (before.fields.status === 'pending' && s.invitation.status === 'expired') return 'expired';
  return before.updatedAt === s.invitation.updated_at ? 'content' : 'outdated';
}

/** Multi-line text of a report, for the command's exit. */
export function formatReconcileReport(r: ReconcileReport): string {
  const verb = r.dryRun ? 'would repair' : 'repaired';
  const lines = [
    `reconciliation ${r.status}${r.dryRun ? ' (dry run: nothing written)' : ''}${r.mode ? `, ${r.mode === 'targeted' ? 'targeted re-fetches only' : r.mode === 'instance' ? 'instance-wide list' : 'organization by organization'}` : ''}`,
    `  listed     ${r.listed} invitation(s); re-fetched ${r.refetched} one by one`,
    ...DRIFT_KINDS.map((k) => `  ${k.padEnd(10)} ${r.drift[k].found} found, ${r.dryRun ? r.drift[k].found : r.drift[k].repaired} ${verb}`),
    ...(r.organizations ? [`  orgs       ${r.organizations.listed} listed, ${r.organizations.missing} unknown before, ${r.organizations.gone} deleted in Clerk (${r.dryRun ? 'would be ' : ''}tombstoned)`] : []),
    `  requests   ${r.requests} (${r.rateLimited} answered 429)`,
    `  duration   ${(r.durationMs / 1000).toFixed(1)} s`,
  ];
  if (r.error) lines.push(`  error      ${r.error}`);
  return lines.join('\n');
}
