import { BapiNotFoundError } from '../bapi/errors.ts';
import type { BapiClient } from '../bapi/client.ts';
import type { BapiCaller } from '../bapi/caller.ts';
import type { DerivedJobData, InvitationJobData } from '../queue/job.ts';
import { safeJson } from '../state/codec.ts';
import type { StatePublisher } from '../state/publisher.ts';
import type { SharedState } from '../state/shared-state.ts';

/** The invitation field that names the changed object, per derived field. */
const SOURCE_FIELD = { role: 'role', inviter: 'inviter_id' } as const;
const PAGE = 500;

export interface RefreshDerivedDeps {
  state: SharedState;
  publisher: StatePublisher;
  bapi: BapiClient;
  /** Calls under the shared BAPI budget (a 429 pauses every caller). */
  caller: BapiCaller;
  /** Queues one invitation's re-fetch (deduplicated with any event already waiting). */
  enqueue: (job: InvitationJobData) => Promise<void>;
}

export interface RefreshResult {
  /** Live invitations in the shared state whose derived field comes from the changed object. */
  matched: number;
  /** Organization list pages fetched, and single re-fetches queued. */
  pages: number;
  queued: number;
}

/**
 * A role or user changed: Clerk derives `role_name` or `public_inviter_data` when it reads,
 * so its invitations change without an event or a new `updated_at`. Finds them in the shared
 * state (Redis searches the values, only matches travel), then per organization fetches them
 * the cheaper way: list pages while two or more are still unseen (a page costs one call and
 * shows up to 500), a single GET job for each one left. Every answer goes through the publish
 * rule, where the same `updated_at` with other content wins.
 */
export async function refreshDerived(deps: RefreshDerivedDeps, job: DerivedJobData): Promise<RefreshResult> {
  const field = SOURCE_FIELD[job.field];
  const byOrganization = new Map<string, Set<string>>();
  for await (const batch of deps.state.findContaining(job.value)) {
    for (const s of batch) {
      if (s.raw === null || (safeJson(s.raw) as Record<string, unknown> | undefined)?.[field] !== job.value) continue;
      const ids = byOrganization.get(s.fields.organizationId) ?? new Set<string>();
      byOrganization.set(s.fields.organizationId, ids.add(s.id));
    }
  }
  const result: RefreshResult = { matched: 0, pages: 0, queued: 0 };
  for (const [organizationId, ids] of byOrganization) {
    result.matched += ids.size;
    const unseen = new Set(ids);
    try {
      for (let offset = 0; unseen.size >= 2; offset += PAGE) {
        const page = await deps.caller.call('list organization invitations', () => deps.bapi.listOrganizationInvitations(organizationId, { limit: PAGE, offset }));
        result.pages++;
        if (page.data.length) {
          await deps.publisher.publish(page.data.map((invitation) => ({ kind: 'present', invitation, observedAt: page.receivedAt, source: 'webhook', receivedAt: job.receivedAt })));
        }
        for (const inv of page.data) unseen.delete(inv.id);
        if (offset + PAGE >= page.totalCount) break;
      }
    } catch (err) {
      // The organization is gone: the single fetches tombstone what is left.
      if (!(err instanceof BapiNotFoundError)) throw err;
    }
    for (const invitationId of unseen) {
      await deps.enqueue({ organizationId, invitationId, receivedAt: job.receivedAt, reason: job.reason });
      result.queued++;
    }
  }
  return result;
}
