import { notFound, organizationNotFound } from './errors.ts';
import { bodyObject, ok, optionalNumber, optionalObject, optionalString, requiredString, type RouteTable } from './http.ts';
import { paginate, parseListParams, parseStatuses, single } from './query.ts';
import type { SimulatorStore } from './store.ts';

export interface BapiContext {
  store: SimulatorStore;
}

/** Route key of the single-invitation GET, whose calls are counted per invitation. */
export const GET_INVITATION = 'GET /v1/organizations/:organization_id/invitations/:invitation_id';

const INVITATION_ORDER = ['created_at', 'email_address'] as const;

/** The invitation, when it exists in that organization (another organization's id is a 404, as in BAPI). */
function invitationIn(store: SimulatorStore, organizationId: string, invitationId: string) {
  if (!store.getOrganization(organizationId)) throw organizationNotFound();
  const inv = store.getInvitation(invitationId);
  if (!inv || inv.organization_id !== organizationId) throw notFound();
  return inv;
}

function invitationList(store: SimulatorStore, organizationId: string, query: URLSearchParams, statuses: Set<string> | undefined) {
  const list = parseListParams(query, INVITATION_ORDER);
  const emails = new Set(query.getAll('email_address').filter((e) => e !== '').map((e) => e.toLowerCase()));
  const all = store.invitationsOf(organizationId);
  if (!all) throw organizationNotFound();
  const items = all.filter((inv) => (!statuses || statuses.has(inv.status)) && (emails.size === 0 || emails.has(inv.email_address)));
  return ok(paginate(items, list));
}

/** Clerk's Backend API for organization invitations, as far as the mirror uses it. */
export const bapiRoutes: RouteTable<BapiContext> = {
  // Deprecated, still served: the pending list, paginated as the list is. Before the single
  // GET, whose `:invitation_id` would take "pending" (routes match in table order).
  'GET /v1/organizations/:organization_id/invitations/pending': ({ store, params, query }) => invitationList(store, params.organization_id!, query, new Set(['pending'])),

  [GET_INVITATION]: ({ store, params }) => ok(invitationIn(store, params.organization_id!, params.invitation_id!)),

  'GET /v1/organizations/:organization_id/invitations': ({ store, params, query }) => invitationList(store, params.organization_id!, query, parseStatuses(query)),

  'POST /v1/organizations/:organization_id/invitations': ({ store, params, body }) => {
    const b = bodyObject(body);
    const inv = store.createInvitation(params.organization_id!, {
      emailAddress: requiredString(b, 'email_address'),
      role: requiredString(b, 'role'),
      inviterUserId: optionalString(b, 'inviter_user_id'),
      publicMetadata: optionalObject(b, 'public_metadata'),
      privateMetadata: optionalObject(b, 'private_metadata'),
      redirectUrl: optionalString(b, 'redirect_url'),
      expiresInDays: optionalNumber(b, 'expires_in_days'),
    });
    return ok(inv);
  },

  'POST /v1/organizations/:organization_id/invitations/:invitation_id/revoke': ({ store, params }) => {
    const inv = invitationIn(store, params.organization_id!, params.invitation_id!);
    return ok(store.revokeInvitation(inv.id));
  },

  'GET /v1/organization_invitations': ({ store, query }) => {
    // Switched off, the route answers as an unknown path would, so clients must fall back.
    if (!store.instanceListAvailable) throw notFound();
    const list = parseListParams(query, INVITATION_ORDER);
    const statuses = parseStatuses(query);
    const q = single(query, 'query')?.toLowerCase();
    return ok(store.instancePage(list.orderBy as { field: string; direction: 1 | -1 }, (inv) => (!statuses || statuses.has(inv.status)) && (!q || inv.email_address.includes(q)), list.offset, list.limit, Boolean(statuses || q)));
  },

  'GET /v1/organizations': ({ store, query }) => {
    const list = parseListParams(query, ['created_at', 'name']);
    const q = single(query, 'query')?.toLowerCase();
    const items = store
      .listOrganizations()
      .filter((o) => !q || o.id.toLowerCase().includes(q) || o.name.toLowerCase().includes(q) || o.slug.includes(q));
    return ok(paginate(items, list));
  },

  'GET /v1/organizations/:organization_id': ({ store, params }) => {
    const org = store.getOrganization(params.organization_id!);
    if (!org) throw notFound();
    return ok(org);
  },
};
