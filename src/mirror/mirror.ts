import type { OrganizationInvitation } from '@clerk/backend';
import type { InvitationStatus } from '../clerk/types.ts';
import { notFoundBody, organizationNotFoundBody, toClerkAPIResponseError } from '../clerk/error-bodies.ts';
import { toSdkInvitation } from './invitation.ts';
import { InvalidListParamError, parseListQuery, sdkQuery } from './list-params.ts';
import { MirrorReader } from './reader.ts';
import { isMigrated, migrateMirror } from './migrate.ts';
import { MirrorFileError } from './file.ts';
import { openMirrorDb, type MirrorConnection } from './open.ts';

export interface CreateMirrorOptions {
  /**
   * SQLite file of the mirror.
   * @defaultValue `process.env.MIRROR_DB_PATH`, else `./data/mirror.db`
   */
  path?: string;
  /**
   * Open for reading only: what a service that only looks invitations up should do while a
   * replica writes the same file. A writable open applies pending migrations. A read-only
   * mirror checks every 2 s (never during a lookup) that the path still names the file it
   * opened, and opens it again once it was replaced or recreated.
   * @defaultValue false
   */
  readonly?: boolean;
}

export interface GetOrganizationInvitationParams {
  organizationId: string;
  invitationId: string;
}

/**
 * `getOrganizationInvitationList`'s parameters, taken as `@clerk/backend` takes them: a falsy
 * value (`limit: 0`, `orderBy: ''`) means BAPI's default, other keys are sent snake_cased.
 */
export interface GetOrganizationInvitationListParams {
  organizationId: string;
  status?: InvitationStatus[] | InvitationStatus;
  /** Exact addresses (BAPI's `email_address`; the SDK forwards it). */
  emailAddress?: string | string[];
  limit?: number;
  offset?: number;
  /** `created_at` or `email_address`, `+`/`-` prefix. @defaultValue `-created_at` */
  orderBy?: string;
}

export interface PaginatedInvitations {
  data: OrganizationInvitation[];
  totalCount: number;
}

export interface LookupOptions {
  /**
   * The caller needs at least this version (an event's `updated_at`): an older state counts
   * as a miss (asked of Clerk with read-through, else MirrorBehindError).
   */
  minUpdatedAt?: number;
}

/** An invitation and where it came from: the mirror's file, or Clerk through read-through. */
export interface Lookup {
  invitation: OrganizationInvitation;
  source: 'mirror' | 'clerk';
}

/** The mirror holds an older state than the lookup asked for, and read-through is off (or could not ask). */
export class MirrorBehindError extends Error {
  override name = 'MirrorBehindError';
  constructor(
    /** The version held (or answered by Clerk through read-through); undefined when the mirror has none. */
    readonly heldUpdatedAt: number | undefined,
    readonly minUpdatedAt: number,
  ) {
    super(heldUpdatedAt === undefined ? `the mirror has no state of it yet; ${minUpdatedAt} was asked for` : `the mirror holds the version of ${heldUpdatedAt}, older than the ${minUpdatedAt} asked for`);
  }
}

/** Asks Clerk on a miss (replica/read-through.ts): its answer, a 404, or undefined when it did not ask. */
export type ReadThroughLookup = (organizationId: string, invitationId: string) => Promise<{ invitation: object } | { missing: true } | undefined>;

export interface Mirror {
  /** Same answer as `clerkClient.organizations.getOrganizationInvitation(params)`, or the same 404 error. */
  getOrganizationInvitation(params: GetOrganizationInvitationParams, options?: LookupOptions): Promise<OrganizationInvitation>;
  /** `getOrganizationInvitation`, saying where the answer came from. */
  lookupOrganizationInvitation(params: GetOrganizationInvitationParams, options?: LookupOptions): Promise<Lookup>;
  /** Same answer as `clerkClient.organizations.getOrganizationInvitationList(params)`. */
  getOrganizationInvitationList(params: GetOrganizationInvitationListParams): Promise<PaginatedInvitations>;
  close(): void;
}

export const DEFAULT_MIRROR_DB_PATH = './data/mirror.db';

/** Opens a mirror file for lookups. */
export function createMirror(options: CreateMirrorOptions = {}): Mirror {
  const path = options.path ?? (process.env.MIRROR_DB_PATH || DEFAULT_MIRROR_DB_PATH);
  // Names the file and what to do (not a database, a directory, read-only, newer version…).
  // A read-only mirror notices a replaced file on a timer and opens it again (open.ts).
  const conn = openMirrorDb({ path, readonly: options.readonly ?? false });
  try {
    if (!conn.readonly) migrateMirror(conn);
    else if (!isMigrated(conn)) throw new MirrorFileError(path, `the mirror at ${path} has not been migrated: run \`clerk-invitation-mirror migrate\` or start the service`);
  } catch (err) {
    conn.close();
    throw err;
  }
  return mirrorOver(conn, () => conn.close());
}

/**
 * The lookup surface over an already open connection (the service shares its own). With
 * `readThrough`, a lookup of an invitation the mirror has never seen (no row, not a
 * tombstone), or older than `minUpdatedAt`, asks Clerk.
 * @internal
 */
export function mirrorOver(conn: MirrorConnection, close: () => void = () => {}, { readThrough }: { readThrough?: ReadThroughLookup } = {}): Mirror {
  const reader = new MirrorReader(conn);
  const miss = (organizationId: string) => toClerkAPIResponseError(404, reader.organizationMissing(organizationId) ? organizationNotFoundBody() : notFoundBody());
  const lookup = async ({ organizationId, invitationId }: GetOrganizationInvitationParams, { minUpdatedAt }: LookupOptions = {}): Promise<Lookup> => {
    requireId(organizationId);
    requireId(invitationId);
    const raw = reader.findRaw(organizationId, invitationId);
    const held = raw === undefined ? undefined : (JSON.parse(raw) as { updated_at: number });
    if (held && (minUpdatedAt === undefined || held.updated_at >= minUpdatedAt)) return { invitation: toSdkInvitation(held as never), source: 'mirror' };
    // A tombstone is Clerk's own 404: read-through is for what the mirror has not seen.
    const ask = readThrough && (held !== undefined || reader.neverSeen(organizationId, invitationId));
    const answer = ask ? await readThrough(organizationId, invitationId) : undefined;
    if (answer && 'invitation' in answer) {
      const got = answer.invitation as { updated_at: number };
      // Clerk's own read may lag behind the event the caller holds: still not what it asked for.
      if (minUpdatedAt !== undefined && got.updated_at < minUpdatedAt) throw new MirrorBehindError(got.updated_at, minUpdatedAt);
      return { invitation: toSdkInvitation(got as never), source: 'clerk' };
    }
    if (answer && 'missing' in answer) throw miss(organizationId);
    // The caller knows a version exists: "not found" would tell it otherwise.
    if (minUpdatedAt !== undefined) throw new MirrorBehindError(held?.updated_at, minUpdatedAt);
    throw miss(organizationId);
  };
  return {
    async getOrganizationInvitation(params, options) {
      // The plain hit, other services' hottest call, without the lookup's wrapping.
      if (options?.minUpdatedAt === undefined && params.organizationId && params.invitationId) {
        const raw = reader.findRaw(params.organizationId, params.invitationId);
        if (raw !== undefined) return toSdkInvitation(JSON.parse(raw));
      }
      return (await lookup(params, options)).invitation;
    },
    lookupOrganizationInvitation: lookup,
    async getOrganizationInvitationList(params) {
      requireId(params.organizationId);
      let query;
      try {
        query = parseListQuery(params.organizationId, sdkQuery(params));
      } catch (err) {
        if (err instanceof InvalidListParamError) throw toClerkAPIResponseError(422, err.toClerkJSON());
        throw err;
      }
      // After the parameters, as BAPI: a bad parameter is a 422 even for an unknown organization.
      if (reader.organizationMissing(params.organizationId)) throw toClerkAPIResponseError(404, organizationNotFoundBody());
      const { rows, totalCount } = reader.listRaw(query);
      return { data: rows.map((raw) => toSdkInvitation(JSON.parse(raw))), totalCount };
    },
    close,
  };
}

/** The SDK's own guard, with its exact message. */
function requireId(id: string | undefined): void {
  if (!id) throw new Error('A valid resource ID is required.');
}
