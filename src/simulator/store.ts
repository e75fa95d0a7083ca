import { badRequest, invalidParam, notFound } from './errors.ts';
import { newClerkId } from './ids.ts';
import { buildInvitation, type CreateInvitationInput } from './invitation.ts';
import {
  DAY_MS,
  DEFAULT_ORG_IMAGE,
  DEFAULT_USER_IMAGE,
  publicOrganizationData,
  slugify,
  type InvitationWithOrganizationJSON,
  type OrganizationJSON,
  type PublicInviterDataJSON,
  type SimInvitationJSON,
} from './model.ts';
import { seededRandom } from './random.ts';
import { organizationName, person } from './seed-data.ts';

/** Invitation event types Clerk sends through Svix. Expiry has none, as in production. */
export type { CreateInvitationInput } from './invitation.ts';

export type InvitationEventType = 'organizationInvitation.created' | 'organizationInvitation.accepted' | 'organizationInvitation.revoked';
/** The webhooks the store sends: invitation events, `organization.created` / `.deleted`, `role.updated` and `user.updated`. */
export type StoreEventType = InvitationEventType | 'organization.created' | 'organization.deleted' | 'role.updated' | 'user.updated';

export interface StoreOptions {
  /** Seeds ids and generated data (not faults: those have their own stream). @defaultValue 1 */
  seed?: number;
  /** Whether `GET /v1/organization_invitations` exists; the backfill must cope without it. @defaultValue true */
  instanceListAvailable?: boolean;
  /**
   * Whether the single GET and the per-organization list carry `public_organization_data`.
   * Clerk's spec leaves it out there; this lets a test check the mirror copes either way.
   * @defaultValue false
   */
  publicOrganizationDataOnGet?: boolean;
  /**
   * Whether an invitation that expires gets `updated_at` = its `expires_at` (true) or keeps
   * its `updated_at` (false): which one Clerk does is *unconfirmed*. @defaultValue true
   */
  expiryMovesUpdatedAt?: boolean;
  /**
   * How long after a change the single GET still answers the state before it (BAPI's
   * read-after-write is undocumented: *unconfirmed*). A new invitation is readable at once;
   * lists are never behind. 0 switches it off. @defaultValue 0
   */
  readLagMs?: number;
  /** Called on create/accept/revoke with the webhook `data` (the server forwards it to delivery). */
  onEvent?: (type: StoreEventType, data: Record<string, unknown>) => void;
}

export interface SeedInput {
  organizations: number;
  invitationsPerOrganization: number;
}

/**
 * The simulated instance: organizations, invitations and a clock (real time plus an offset
 * that `advanceClock` grows). Every read returns copies, so callers cannot change state
 * behind the store's back and `updated_at` stays the only record of change.
 */
export class SimulatorStore {
  instanceListAvailable: boolean;
  publicOrganizationDataOnGet: boolean;
  readLagMs: number;
  expiryMovesUpdatedAt: boolean;
  /** Per invitation, its recent states and when each began, for `readLagMs` (newest last). */
  private readonly history = new Map<string, { state: SimInvitationJSON; at: number }[]>();
  private readonly random: () => number;
  private readonly onEvent: NonNullable<StoreOptions['onEvent']>;
  private offsetMs = 0;
  private readonly orgs = new Map<string, OrganizationJSON>();
  private readonly invitations = new Map<string, SimInvitationJSON>();
  private readonly inviters = new Map<string, PublicInviterDataJSON>();
  private serial = 0;
  /** Invitations sorted per order, rebuilt when the set of invitations changes (not their states). */
  private sorted = new Map<string, SimInvitationJSON[]>();
  /** Earliest `expires_at` among pending invitations, so most reads skip the expiry sweep. */
  private nextExpiry = Infinity;

  constructor(opts: StoreOptions = {}) {
    // Offset from the fault stream's seed so ids never correlate with fault outcomes.
    this.random = seededRandom((opts.seed ?? 1) ^ 0x5eed1d5);
    this.instanceListAvailable = opts.instanceListAvailable ?? true;
    this.publicOrganizationDataOnGet = opts.publicOrganizationDataOnGet ?? false;
    this.readLagMs = opts.readLagMs ?? 0;
    this.expiryMovesUpdatedAt = opts.expiryMovesUpdatedAt ?? true;
    this.onEvent = opts.onEvent ?? (() => {});
  }

  now(): number {
    return Date.now() + this.offsetMs;
  }

  /** Moves the clock forward; pending invitations whose `expires_at` passed become `expired`. */
  advanceClock(ms: number): number {
    if (!Number.isFinite(ms) || ms < 0) throw invalidParam('ms', 'ms must be a non-negative number: the clock never runs backwards');
    this.offsetMs += ms;
    this.sweep();
    return this.now();
  }

  /**
   * Pre-existing data for a backfill to find: no webhooks are sent for it. Ids, addresses and
   * statuses repeat under one seed (for the same sequence of store operations); timestamps are
   * the same offsets from the clock, spread over the last 60 days, so some are already expired.
   */
  seed(input: SeedInput): { organizationIds: string[]; invitationIds: string[] } {
    const { organizations, invitationsPerOrganization } = input;
    for (const [name, n] of Object.entries({ organizations, invitationsPerOrganization })) {
      if (!Number.isSafeInteger(n) || n < 0) throw invalidParam(name, `${name} must be a non-negative integer`);
    }
    const r = this.random;
    const now = this.now();
    const organizationIds: string[] = [];
    const invitationIds: string[] = [];
    for (let o = 0; o < organizations; o++) {
      const admin = this.newInviter();
      const org = this.createOrganization({ createdBy: admin.user_id, createdAt: now - 60 * DAY_MS - Math.floor(r() * 300 * DAY_MS) });
      organizationIds.push(org.id);
      for (let i = 0; i < invitationsPerOrganization; i++) {
        const createdAt = now - 60_000 - Math.floor(r() * 60 * DAY_MS);
        const input = {
          emailAddress: person(r, ++this.serial).email,
          role: r() < 0.2 ? 'org:admin' : 'org:member',
          inviterUserId: r() < 0.7 ? admin.user_id : undefined,
          redirectUrl: r() < 0.5 ? 'https://accounts.example.com/sign-up' : undefined,
          publicMetadata: r() < 0.3 ? { team: 'seeded' } : {},
        };
        const inv = this.build(org, input, createdAt);
        const roll = r();
        if (inv.expires_at! <= now) {
          inv.status = 'expired';
          inv.updated_at = inv.expires_at!;
        } else if (roll >= 0.55) {
          inv.status = roll < 0.85 ? 'accepted' : 'revoked';
          inv.updated_at = createdAt + 1 + Math.floor(r() * (now - createdAt - 1));
        }
        this.invitations.set(inv.id, inv);
        this.sorted.clear();
        invitationIds.push(inv.id);
      }
    }
    this.recomputeNextExpiry();
    return { organizationIds, invitationIds };
  }

  /**
   * Clerk sends `organization.created`; the store does when `webhook` is true. Off by
   * default: most tests set organizations up before the mirror runs, and count its calls.
   */
  createOrganization(input: { name?: string; slug?: string; createdBy?: string; createdAt?: number; webhook?: boolean } = {}): OrganizationJSON {
    const name = input.name ?? organizationName(this.random);
    const id = newClerkId('org', this.random);
    const createdAt = input.createdAt ?? this.now();
    const org: OrganizationJSON = {
      object: 'organization',
      id,
      name,
      slug: input.slug ?? `${slugify(name)}-${id.slice(-6).toLowerCase()}`,
      image_url: DEFAULT_ORG_IMAGE,
      has_image: false,
      max_allowed_memberships: 5,
      admin_delete_enabled: true,
      public_metadata: {},
      private_metadata: {},
      created_by: input.createdBy ?? null,
      created_at: createdAt,
      updated_at: createdAt,
    };
    this.orgs.set(id, org);
    if (input.webhook) this.onEvent('organization.created', { ...org });
    return structuredClone(org);
  }

  getOrganization(id: string): OrganizationJSON | undefined {
    const org = this.orgs.get(id);
    return org && structuredClone(org);
  }

  listOrganizations(): OrganizationJSON[] {
    return [...this.orgs.values()].map((o) => structuredClone(o));
  }

  /**
   * Its invitations vanish with it, without invitation webhooks (Clerk sends none for them
   * either); Clerk sends `organization.deleted`, unless `webhook` is false (a lost webhook).
   */
  deleteOrganization(id: string, { webhook = true }: { webhook?: boolean } = {}): void {
    if (!this.orgs.delete(id)) throw notFound();
    for (const [invId, inv] of this.invitations) if (inv.organization_id === id) this.invitations.delete(invId);
    this.sorted.clear();
    if (webhook) this.onEvent('organization.deleted', { object: 'organization', id, deleted: true });
  }

  createInvitation(organizationId: string, input: CreateInvitationInput): SimInvitationJSON {
    this.sweep();
    const org = this.orgs.get(organizationId);
    if (!org) throw notFound();
    const inv = this.build(org, input, this.now());
    this.invitations.set(inv.id, inv);
    this.sorted.clear();
    this.nextExpiry = Math.min(this.nextExpiry, inv.expires_at ?? Infinity);
    this.remember(inv);
    this.emit('organizationInvitation.created', inv);
    return this.view(inv);
  }

  acceptInvitation(id: string, userId: string = newClerkId('user', this.random)): SimInvitationJSON {
    const inv = this.pending(id);
    inv.status = 'accepted';
    this.touch(inv);
    this.remember(inv);
    this.emit('organizationInvitation.accepted', inv, { user_id: userId });
    return this.view(inv);
  }

  revokeInvitation(id: string): SimInvitationJSON {
    const inv = this.pending(id);
    inv.status = 'revoked';
    this.touch(inv);
    this.remember(inv);
    this.emit('organizationInvitation.revoked', inv);
    return this.view(inv);
  }

  /** Expires a pending invitation now (its `expires_at` moves to now). Like real expiry, no webhook. */
  expireInvitation(id: string): SimInvitationJSON {
    const inv = this.pending(id);
    inv.status = 'expired';
    inv.expires_at = this.now();
    if (this.expiryMovesUpdatedAt) {
      this.touch(inv);
      inv.expires_at = inv.updated_at;
    }
    this.remember(inv);
    this.recomputeNextExpiry();
    return this.view(inv);
  }

  /**
   * Renames a role: every invitation with that role `key` shows the new `role_name` (a derived
   * field) while its `updated_at` stays, as Clerk derives it when it reads. Clerk sends
   * `role.updated`, no invitation event. Returns the invitations it changed.
   */
  renameRole(key: string, name: string): SimInvitationJSON[] {
    this.sweep();
    const changed: SimInvitationJSON[] = [];
    for (const inv of this.invitations.values()) {
      if (inv.role !== key || inv.role_name === name) continue;
      inv.role_name = name;
      this.remember(inv);
      changed.push(this.view(inv));
    }
    this.onEvent('role.updated', { object: 'role', key, name, updated_at: this.now() });
    return changed;
  }

  /**
   * Changes a user's public data: every invitation they sent shows it in
   * `public_inviter_data` (derived when Clerk reads) while its `updated_at` stays. Clerk
   * sends `user.updated`, no invitation event. Returns the invitations it changed.
   */
  updateUser(userId: string, patch: { firstName?: string | null; lastName?: string | null }): SimInvitationJSON[] {
    this.sweep();
    const data = { ...this.inviter(userId) };
    if (patch.firstName !== undefined) data.first_name = patch.firstName;
    if (patch.lastName !== undefined) data.last_name = patch.lastName;
    this.inviters.set(userId, data);
    const changed: SimInvitationJSON[] = [];
    for (const inv of this.invitations.values()) {
      if (inv.inviter_id !== userId) continue;
      inv.public_inviter_data = structuredClone(data);
      this.remember(inv);
      changed.push(this.view(inv));
    }
    this.onEvent('user.updated', { object: 'user', id: userId, first_name: data.first_name, last_name: data.last_name, updated_at: this.now() });
    return changed;
  }

  /** Clerk has no invitation webhook for metadata changes, so none is sent. */
  updateMetadata(id: string, patch: { publicMetadata?: Record<string, unknown>; privateMetadata?: Record<string, unknown> }): SimInvitationJSON {
    this.sweep();
    const inv = this.invitations.get(id);
    if (!inv) throw notFound();
    if (patch.publicMetadata) inv.public_metadata = structuredClone(patch.publicMetadata);
    if (patch.privateMetadata) inv.private_metadata = structuredClone(patch.privateMetadata);
    this.touch(inv);
    this.remember(inv);
    return this.view(inv);
  }

  /** The invitation as the single GET answers it, or undefined when it (or its organization) is gone. */
  getInvitation(id: string): SimInvitationJSON | undefined {
    this.sweep();
    const inv = this.invitations.get(id);
    if (!inv) return undefined;
    const states = this.readLagMs > 0 ? this.history.get(id) : undefined;
    if (!states) return this.view(inv);
    // The newest state that began at least readLagMs ago; else the oldest one known.
    const visible = [...states].reverse().find((h) => h.at <= this.now() - this.readLagMs) ?? states[0]!;
    return this.view(visible.state);
  }

  /** Every existing invitation as the single GET answers it: what a converged mirror must hold. */
  truth(): SimInvitationJSON[] {
    this.sweep();
    return [...this.invitations.values()].map((inv) => this.view(inv));
  }

  /** Invitations in the per-organization list's item shape; undefined when the organization does not exist. */
  invitationsOf(organizationId: string): SimInvitationJSON[] | undefined {
    if (!this.orgs.has(organizationId)) return undefined;
    this.sweep();
    // Filter before copying: a backfill lists every organization, and copying the whole instance each time is quadratic.
    return [...this.invitations.values()].filter((inv) => inv.organization_id === organizationId).map((inv) => this.view(inv));
  }

  /** One page of the instance-wide list: sorts references (cached), copies only the page. */
  instancePage(order: { field: string; direction: 1 | -1 }, keep: (inv: SimInvitationJSON) => boolean, offset: number, limit: number, filtered: boolean) {
    this.sweep();
    const key = `${order.direction}${order.field}`;
    let all = this.sorted.get(key);
    if (!all) {
      const cmp = (x: unknown, y: unknown) => (typeof x === 'number' && typeof y === 'number' ? x - y : String(x ?? '') < String(y ?? '') ? -1 : String(x ?? '') > String(y ?? '') ? 1 : 0);
      all = [...this.invitations.values()].sort((a, b) => (cmp((a as unknown as Record<string, unknown>)[order.field], (b as unknown as Record<string, unknown>)[order.field]) || cmp(a.id, b.id)) * order.direction);
      this.sorted.set(key, all);
    }
    const items = filtered ? all.filter(keep) : all;
    return { data: items.slice(offset, offset + limit).map((inv) => this.withOrganization(inv)), total_count: items.length };
  }

  /** Every invitation with `public_organization_data`, as the instance-wide list and webhooks carry it. */
  invitationsWithOrganization(): InvitationWithOrganizationJSON[] {
    this.sweep();
    return [...this.invitations.values()].map((inv) => this.withOrganization(inv));
  }

  private build(org: OrganizationJSON, input: CreateInvitationInput, createdAt: number): SimInvitationJSON {
    const inviter = input.inviterUserId === undefined ? null : this.inviter(input.inviterUserId);
    return buildInvitation(org, input, { createdAt, inviter, random: this.random });
  }

  private newInviter(): PublicInviterDataJSON {
    const p = person(this.random, ++this.serial);
    const data = { user_id: newClerkId('user', this.random), first_name: p.firstName, last_name: p.lastName, image_url: DEFAULT_USER_IMAGE, has_image: false, identifier: p.email };
    this.inviters.set(data.user_id, data);
    return structuredClone(data);
  }

  /** Users the simulator has not seen get a made-up profile, remembered so it stays stable. */
  private inviter(userId: string): PublicInviterDataJSON {
    let data = this.inviters.get(userId);
    if (!data) {
      const p = person(this.random, ++this.serial);
      data = { user_id: userId, first_name: p.firstName, last_name: null, image_url: DEFAULT_USER_IMAGE, has_image: false, identifier: p.email };
      this.inviters.set(userId, data);
    }
    return structuredClone(data);
  }

  private pending(id: string): SimInvitationJSON {
    this.sweep();
    const inv = this.invitations.get(id);
    if (!inv) throw notFound();
    if (inv.status !== 'pending') {
      throw badRequest('organization_invitation_not_pending', 'is not pending', `This invitation is ${inv.status} and can no longer change status.`);
    }
    return inv;
  }

  /** Strictly increasing per invitation: the mirror orders states by `updated_at`, so two changes in one ms must differ. */
  private touch(inv: SimInvitationJSON, at = this.now()): void {
    inv.updated_at = Math.max(at, inv.updated_at + 1);
  }

  /** Notes `inv`'s state once a change is complete, for reads that lag (`readLagMs`). */
  private remember(inv: SimInvitationJSON): void {
    if (this.readLagMs <= 0) return;
    const now = this.now();
    const states = (this.history.get(inv.id) ?? []).filter((h, i, all) => i === all.length - 1 || all[i + 1]!.at > now - this.readLagMs);
    states.push({ state: structuredClone(inv), at: now });
    this.history.set(inv.id, states);
  }

  /**
   * Expired invitations get `updated_at` = their `expires_at` (the moment they expired), not
   * the time the clock was advanced: that is when the state changed, whenever anyone looks.
   */
  private sweep(): void {
    const now = this.now();
    if (now < this.nextExpiry) return;
    for (const inv of this.invitations.values()) {
      if (inv.status === 'pending' && inv.expires_at !== null && inv.expires_at <= now) {
        inv.status = 'expired';
        if (this.expiryMovesUpdatedAt) this.touch(inv, inv.expires_at);
        this.remember(inv);
      }
    }
    this.recomputeNextExpiry();
  }

  private recomputeNextExpiry(): void {
    let next = Infinity;
    for (const inv of this.invitations.values()) {
      if (inv.status === 'pending' && inv.expires_at !== null) next = Math.min(next, inv.expires_at);
    }
    this.nextExpiry = next;
  }

  private view(inv: SimInvitationJSON): SimInvitationJSON {
    return this.publicOrganizationDataOnGet ? this.withOrganization(inv) : structuredClone(inv);
  }

  private withOrganization(inv: SimInvitationJSON): InvitationWithOrganizationJSON {
    const org = this.orgs.get(inv.organization_id);
    return { ...structuredClone(inv), public_organization_data: org ? publicOrganizationData(org) : null };
  }

  private emit(type: InvitationEventType, inv: SimInvitationJSON, extra: Record<string, unknown> = {}): void {
    const data: Record<string, unknown> = { ...this.withOrganization(inv), ...extra };
    this.onEvent(type, data);
  }
}
