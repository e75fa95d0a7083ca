import { BapiNotFoundError } from '../bapi/errors.ts';
import type { BapiClient } from '../bapi/client.ts';
import type { Logger } from '../logger.ts';
import type { StateSource, StoredState } from '../state/codec.ts';
import type { OrganizationState, PublishOutcome, StatePublisher } from '../state/publisher.ts';
import type { SharedState } from '../state/shared-state.ts';
import type { BapiCaller } from '../bapi/caller.ts';

/** BAPI's largest page of `GET /v1/organizations`. */
const PAGE = 500;
/** A listing that missed organizations (one deleted mid-way shifts the offsets) is done again, this often at most. */
const LISTING_TRIES = 3;

export interface OrganizationPassOptions {
  bapi: BapiClient;
  caller: BapiCaller;
  publisher: StatePublisher;
  state: SharedState;
  log: Logger;
  /** The epoch the run works on: publishes into another one fail (EpochChangedError). */
  epoch: string;
  source: Extract<StateSource, 'backfill' | 'reconcile'>;
  /** Compare only (reconcile --dry-run). @defaultValue false */
  dryRun?: boolean;
  /**
   * Also re-fetch every organization the shared state holds as existing that the listing did
   * not have, tombstoning those Clerk answers 404 for (reconciliation). @defaultValue false
   */
  confirmUnlisted?: boolean;
  now?: () => number;
}

export interface OrganizationPassReport {
  /** Organizations in Clerk's list. */
  listed: number;
  /** Listed but not known to the shared state as existing. */
  missing: number;
  /** Held as existing, 404 in Clerk: tombstoned. */
  gone: number;
  /** The listing was stable and published as complete: unknown organizations now answer 404. */
  complete: boolean;
}

/**
 * Publishes every organization of Clerk's list into the shared state (whether it exists is
 * all that is kept), the last page marked as ending a complete listing, so replicas may then
 * answer 404 for an organization nobody knows, as BAPI does. Offset pages in ascending
 * `created_at`: an organization created meanwhile lands after the pages read, one deleted
 * meanwhile shifts the offsets, so a listing that saw fewer organizations than Clerk counts
 * at its end is done again before it is called complete.
 */
export async function publishOrganizations(o: OrganizationPassOptions): Promise<OrganizationPassReport> {
  const now = o.now ?? Date.now;
  const report: OrganizationPassReport = { listed: 0, missing: 0, gone: 0, complete: false };
  const seen = new Set<string>();
  const startedAt = now();
  const publish = async (states: OrganizationState[], organizationsListed: boolean) => {
    const { outcomes, previous } = await o.publisher.publish(states, { expectEpoch: o.epoch, dryRun: o.dryRun, withPrevious: true, organizationsListed });
    return states.map((_, i) => ({ outcome: outcomes[i]!, before: previous![i] }));
  };
  const tally = (results: { outcome: PublishOutcome; before: Omit<StoredState, 'raw'> | undefined }[]) => {
    for (const r of results) if (r.outcome !== 'stale' && (!r.before || r.before.deleted)) report.missing++;
  };

  for (let attempt = 1; attempt <= LISTING_TRIES && !report.complete; attempt++) {
    const thisPass = new Set<string>();
    for (let offset = 0; ; offset += PAGE) {
      const page = await o.caller.call('list organizations', () => o.bapi.listOrganizations({ limit: PAGE, offset, orderBy: '+created_at' }));
      for (const org of page.data) thisPass.add(org.id);
      const fresh = page.data.filter((org) => !seen.has(org.id));
      for (const org of fresh) seen.add(org.id);
      const last = page.data.length < PAGE || offset + PAGE >= page.totalCount;
      // An organization deleted behind the offset shifts the rest left, and one of them is
      // never listed: then fewer were seen than Clerk counts (creations land after the pages
      // read, so they alone never make a pass incomplete).
      const stable = !last || thisPass.size >= page.totalCount;
      const states = fresh.map((org): OrganizationState => ({ kind: 'organization', id: org.id, gone: false, observedAt: page.receivedAt, source: o.source }));
      tally(await publish(states, last && stable));
      if (last) {
        report.complete = stable;
        if (!stable) o.log.info({ attempt, seen: thisPass.size, total: page.totalCount }, 'organizations changed while they were listed: listing them again');
        break;
      }
    }
  }
  report.listed = seen.size;
  if (!report.complete) o.log.warn({ tries: LISTING_TRIES }, 'organizations kept changing while listed: unknown organizations keep answering 200 empty until a later pass');

  if (o.confirmUnlisted) {
    for await (const batch of o.state.scan(1000, 'organizations')) {
      for (const s of batch) {
        if (s.deleted || seen.has(s.id) || s.confirmedAt >= startedAt) continue;
        const gone = await o.caller.call('re-fetch organization', () => o.bapi.getOrganization(s.id)).then(
          () => false,
          (err: unknown) => {
            if (err instanceof BapiNotFoundError) return true;
            throw err;
          },
        );
        const [r] = await publish([{ kind: 'organization', id: s.id, gone, observedAt: now(), source: o.source }], false);
        if (gone && r!.outcome === 'updated') report.gone++;
      }
    }
  }
  return report;
}
