import { BapiNotFoundError } from '../bapi/errors.ts';
import type { BapiClient } from '../bapi/client.ts';
import type { BapiCaller } from '../bapi/caller.ts';
import type { ShapeProbe } from '../maintenance/shape.ts';
import { RECENT_WINDOW_MS } from '../queue/announced.ts';
import type { BatchJobData } from '../queue/job.ts';
import type { InvitationState, StatePublisher } from '../state/publisher.ts';
import { holdsAnnounced, type SharedState } from '../state/shared-state.ts';

const PAGE = 500;

/**
 * Unheld invitations of one organization announced within the count window from which the
 * worker asks for a batch instead of a GET each. A list page costs one call whatever it
 * shows, so from three on it saves at least two calls; at two it would save one, for the
 * batch's wait on both and a page's parsing and publishing, which costs the worker and Redis
 * many single GETs' worth (bench/batch-cost.ts, figures in BENCHMARKS.md). The budget, not
 * CPU, is what runs out, so the threshold stays low.
 */
export const BATCH_THRESHOLD = 3;

/** Announcements of one organization within this long count towards a batch: a burst, not steady traffic. */
export const BATCH_COUNT_WINDOW_MS = 1000;

export interface BatchDeps {
  state: SharedState;
  publisher: StatePublisher;
  bapi: BapiClient;
  /** Calls under the shared BAPI budget (a 429 pauses every caller). */
  caller: BapiCaller;
  /** The organization list's items in the single GET's shape. */
  shape: ShapeProbe;
  now?: () => number;
}

export interface BatchResult {
  /** Invitations announced within the recent window, and those the shared state did not hold yet. */
  announced: number;
  unheld: number;
  /** List pages fetched, invitations they published (all they listed), and announced ones left to their own jobs. */
  pages: number;
  published: number;
  left: number;
}

/**
 * Fetches the invitations of an organization that webhooks announced lately and the shared
 * state does not hold yet, through the organization's list pages (newest first, where a bulk
 * invite lands), while a page may still show two of them and never in more pages than single
 * GETs would cost. Every listed state is published through the publish rule; the jobs of
 * the invitations a page showed at their announced version then find it held and fetch
 * nothing, the others fetch on their own.
 */
export async function fetchOrganizationBatch(deps: BatchDeps, job: BatchJobData): Promise<BatchResult> {
  const now = deps.now ?? Date.now;
  // Kept, not taken: the count that asks for batches stays a burst's while it lasts, and what
  // a batch covered is held by then, so the next one passes over it.
  const ids = await deps.state.recentlyAnnounced(job.organizationId, now() - RECENT_WINDOW_MS);
  const held = ids.length ? await deps.state.held(ids.map((invitationId) => ({ invitationId, organizationId: job.organizationId }))) : [];
  const unseen = new Map<string, number | undefined>();
  ids.forEach((id, i) => {
    if (!holdsAnnounced(held[i]!)) unseen.set(id, held[i]!.announced);
  });
  const result: BatchResult = { announced: ids.length, unheld: unseen.size, pages: 0, published: 0, left: 0 };
  try {
    for (let offset = 0; unseen.size >= 2 && result.pages < result.unheld; offset += PAGE) {
      const page = await deps.caller.call('list organization invitations', () => deps.bapi.listOrganizationInvitations(job.organizationId, { limit: PAGE, offset, orderBy: '-created_at' }));
      result.pages++;
      // Every item of the page, not only the announced ones: the webhooks of a bulk invite
      // still on their way then find their version held and cost nothing.
      const states: InvitationState[] = [];
      for (const invitation of await deps.shape.normalize(page.data)) {
        states.push({ kind: 'present', invitation, observedAt: page.receivedAt, source: 'webhook', receivedAt: job.receivedAt });
        if (!unseen.has(invitation.id)) continue;
        const announced = unseen.get(invitation.id);
        // An older state than announced (BAPI's read lagging) is left to the job's own fetch and its retries.
        if (announced === undefined || invitation.updated_at >= announced) unseen.delete(invitation.id);
      }
      if (states.length) await deps.publisher.publish(states);
      result.published += states.length;
      if (page.data.length < PAGE || offset + PAGE >= page.totalCount) break;
    }
  } catch (err) {
    // The organization is gone: each invitation's own job tombstones it.
    if (!(err instanceof BapiNotFoundError)) throw err;
  }
  result.left = unseen.size;
  return result;
}
