import type { DeliveryOptions, WebhookDelivery } from './delivery.ts';
import { invalidParam, notFound } from './errors.ts';
import type { FaultInjector, FaultOptions } from './faults.ts';
import { bodyObject, ok, optionalNumber, optionalObject, optionalString, requiredString, type RouteTable } from './http.ts';
import type { RateLimiter } from './rate-limit.ts';
import type { SimulatorStats } from './stats.ts';
import type { SimulatorStore } from './store.ts';

export interface ControlContext {
  store: SimulatorStore;
  faults: FaultInjector;
  limiter: RateLimiter;
  delivery: WebhookDelivery;
  stats(): SimulatorStats;
  resetStats(): void;
}

function requiredNumber(b: Record<string, unknown>, name: string): number {
  const v = optionalNumber(b, name);
  if (v === undefined) throw invalidParam(name, `${name} must be a number`);
  return v;
}

function url(b: Record<string, unknown>): string {
  const u = requiredString(b, 'url');
  if (!URL.canParse(u)) throw invalidParam('url', 'url must be an absolute URL');
  return u;
}

/**
 * The control API: the same operations as the in-process `store`, for the CLI, the demo and
 * tests in other processes. Bodies use the store's camelCase names; BAPI routes keep BAPI's.
 */
export const controlRoutes: RouteTable<ControlContext> = {
  'POST /_control/seed': ({ store, body }) => {
    const b = bodyObject(body);
    return ok(store.seed({ organizations: requiredNumber(b, 'organizations'), invitationsPerOrganization: requiredNumber(b, 'invitationsPerOrganization') }));
  },

  'POST /_control/organizations': ({ store, body }) => {
    const b = bodyObject(body);
    return ok(store.createOrganization({ name: optionalString(b, 'name'), slug: optionalString(b, 'slug'), webhook: b.webhook === true }));
  },

  'DELETE /_control/organizations/:organization_id': ({ store, params, query }) => {
    store.deleteOrganization(params.organization_id!, { webhook: query.get('webhook') !== 'false' });
    return ok({ object: 'organization', id: params.organization_id, deleted: true });
  },

  'POST /_control/organizations/:organization_id/invitations': ({ store, params, body }) => {
    const b = bodyObject(body);
    return ok(
      store.createInvitation(params.organization_id!, {
        emailAddress: requiredString(b, 'emailAddress'),
        role: optionalString(b, 'role'),
        publicMetadata: optionalObject(b, 'publicMetadata'),
        privateMetadata: optionalObject(b, 'privateMetadata'),
        expiresInDays: optionalNumber(b, 'expiresInDays'),
        inviterUserId: optionalString(b, 'inviterUserId'),
        redirectUrl: optionalString(b, 'redirectUrl'),
      }),
    );
  },

  'GET /_control/invitations/:invitation_id': ({ store, params }) => {
    const inv = store.getInvitation(params.invitation_id!);
    if (!inv) throw notFound();
    return ok(inv);
  },

  'POST /_control/invitations/:invitation_id/accept': ({ store, params, body }) =>
    ok(store.acceptInvitation(params.invitation_id!, optionalString(bodyObject(body), 'userId'))),

  'POST /_control/invitations/:invitation_id/revoke': ({ store, params }) => ok(store.revokeInvitation(params.invitation_id!)),

  'POST /_control/invitations/:invitation_id/expire': ({ store, params }) => ok(store.expireInvitation(params.invitation_id!)),

  'PATCH /_control/invitations/:invitation_id/metadata': ({ store, params, body }) => {
    const b = bodyObject(body);
    return ok(store.updateMetadata(params.invitation_id!, { publicMetadata: optionalObject(b, 'publicMetadata'), privateMetadata: optionalObject(b, 'privateMetadata') }));
  },

  'GET /_control/clock': ({ store }) => ok({ now: store.now() }),

  'POST /_control/clock/advance': ({ store, body }) => ok({ now: store.advanceClock(requiredNumber(bodyObject(body), 'ms')) }),

  'GET /_control/truth': ({ store }) => {
    const data = store.truth();
    return ok({ data, total_count: data.length });
  },

  'GET /_control/faults': ({ faults }) => ok(faults.current),

  'PUT /_control/faults': ({ faults, body }) => {
    faults.set(bodyObject(body) as Partial<FaultOptions>);
    return ok(faults.current);
  },

  'PUT /_control/rate-limit': ({ limiter, body }) => {
    const b = bodyObject(body);
    const { limit, windowMs } = limiter.settings;
    limiter.configure(optionalNumber(b, 'limit') ?? limit, optionalNumber(b, 'windowMs') ?? windowMs);
    return ok(limiter.settings);
  },

  'PUT /_control/instance-list': ({ store, body }) => {
    const available = bodyObject(body).available;
    if (typeof available !== 'boolean') throw invalidParam('available', 'available must be true or false');
    store.instanceListAvailable = available;
    return ok({ available });
  },

  // Unconfirmed at Clerk: whether a GET right after a change may answer the state before it.
  'PUT /_control/read-lag': ({ store, body }) => {
    const ms = optionalNumber(bodyObject(body), 'ms');
    if (ms === undefined || ms < 0) throw invalidParam('ms', 'ms must be a non-negative number of milliseconds');
    store.readLagMs = ms;
    return ok({ ms });
  },

  'PUT /_control/delivery': ({ delivery, body }) => {
    delivery.setOptions(bodyObject(body) as Partial<DeliveryOptions>);
    return ok(delivery.stats());
  },

  'POST /_control/endpoints': ({ delivery, body }) => {
    delivery.addEndpoint(url(bodyObject(body)));
    return ok({ added: true });
  },

  'DELETE /_control/endpoints': ({ delivery, body }) => {
    delivery.removeEndpoint(url(bodyObject(body)));
    return ok({ removed: true });
  },

  'GET /_control/stats': ({ stats }) => ok(stats()),

  'POST /_control/stats/reset': ({ resetStats, stats }) => {
    resetStats();
    return ok(stats());
  },

  'POST /_control/idle': async ({ delivery }) => {
    await delivery.idle();
    return ok(delivery.stats());
  },
};
