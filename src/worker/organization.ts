import type { InvitationState, StatePublisher } from '../state/publisher.ts';
import type { SharedState } from '../state/shared-state.ts';

/** Tombstones go out in runs of this many: one stream entry each, as a backfill page does. */
const RUN = 500;

export interface RemoveOrganizationDeps {
  state: SharedState;
  publisher: StatePublisher;
  now?: () => number;
}

/**
 * Publishes a tombstone for every live invitation of `organizationId` in the shared state (the
 * organization is gone at Clerk, which then 404s them all without an event for any) and says
 * how many it replaced. The shared state keeps no index by organization: Redis searches the
 * stored values for the id (only matches travel), and each match's own field decides.
 * Each tombstone goes through the publish rule, so an invitation published again meanwhile
 * (a newer state) is compared like any other.
 */
export async function removeOrganization({ state, publisher, now = Date.now }: RemoveOrganizationDeps, organizationId: string, receivedAt: number): Promise<number> {
  let removed = 0;
  for await (const page of state.findContaining(organizationId)) {
    const gone: InvitationState[] = page
      .filter((s) => s.fields.organizationId === organizationId && !s.deleted)
      .map((s) => ({ kind: 'gone', id: s.id, organizationId, knownUpdatedAt: s.updatedAt, observedAt: now(), source: 'webhook', receivedAt }));
    for (let i = 0; i < gone.length; i += RUN) {
      const { outcomes } = await publisher.publish(gone.slice(i, i + RUN));
      removed += outcomes.filter((o) => o === 'updated').length;
    }
  }
  return removed;
}
