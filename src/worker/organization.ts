import type { PublishedState, StatePublisher } from '../state/publisher.ts';
import type { SharedState } from '../state/shared-state.ts';

/** Tombstones go out in runs of this many: one stream entry each, as a backfill page does. */
const RUN = 500;

export interface RemoveOrganizationDeps {
  state: SharedState;
  publisher: StatePublisher;
  now?: () => number;
}

/**
 * Publishes the organization's tombstone and one for every live invitation of it in the
 * shared state (the organization is gone at Clerk, which then 404s them all without an event
 * for any) and says how many invitations it replaced. The organization's tombstone goes with
 * the first run, so for all but the largest organizations every replica applies the whole
 * removal in one transaction. The shared state keeps no index by organization: Redis searches
 * the stored values for the id (only matches travel), and each match's own field decides.
 * Each tombstone goes through the publish rule, so an invitation published again meanwhile
 * (a newer state) is compared like any other.
 */
export async function removeOrganization({ state, publisher, now = Date.now }: RemoveOrganizationDeps, organizationId: string, receivedAt: number): Promise<number> {
  let removed = 0;
  const pending: PublishedState[] = [{ kind: 'organization', id: organizationId, gone: true, observedAt: now(), source: 'webhook', receivedAt }];
  const flush = async (all: boolean) => {
    while (pending.length >= RUN || (all && pending.length > 0)) {
      const run = pending.splice(0, RUN);
      const { outcomes } = await publisher.publish(run);
      removed += outcomes.filter((o, i) => o === 'updated' && run[i]!.kind !== 'organization').length;
    }
  };
  for await (const page of state.findContaining(organizationId)) {
    for (const s of page) {
      if (s.fields.organizationId === organizationId && !s.deleted) {
        pending.push({ kind: 'gone', id: s.id, organizationId, knownUpdatedAt: s.updatedAt, observedAt: now(), source: 'webhook', receivedAt });
      }
    }
    await flush(false);
  }
  await flush(true);
  return removed;
}
