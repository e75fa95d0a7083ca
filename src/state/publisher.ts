import { randomBytes } from 'node:crypto';
import type { InvitationJSON } from '../clerk/types.ts';
import type { Redis } from '../redis/connection.ts';
import { contentHash, decodeHeader, encodeTail, expiryMember, fieldsOf, type StateSource, type StoredState } from './codec.ts';
import type { MirrorKeys } from './keys.ts';
import { stateScripts, type StateScripts } from './scripts.ts';

/** A canonical state of one invitation, as Clerk answered it at `observedAt`. */
export type InvitationState =
  | {
      kind: 'present';
      invitation: InvitationJSON;
      /** The JSON text exactly as received; defaults to `JSON.stringify(invitation)` (list pages). */
      raw?: string;
      /** When Clerk answered (ms, our clock). */
      observedAt: number;
      source: StateSource;
      /** When the receiver accepted the event that caused this fetch, for lag figures. */
      receivedAt?: number;
    }
  | {
      /** BAPI answered 404: the invitation or its organization is gone. */
      kind: 'gone';
      id: string;
      organizationId: string;
      /**
       * BAPI's last version of it, when the caller holds one (a stored row's), never an
       * event's `updated_at`. Taken only when nothing is stored: a tombstone keeps the version
       * of the state it replaces (scripts/publish.lua).
       */
      knownUpdatedAt?: number;
      observedAt: number;
      source: StateSource;
      receivedAt?: number;
    };

/**
 * Whether an organization exists, as Clerk answered at `observedAt` (a list page, a GET, or
 * a 404). Only existence is kept: the mirror serves no organization JSON, and an
 * organization's renames are not changes to it.
 */
export interface OrganizationState {
  kind: 'organization';
  id: string;
  /** BAPI answered 404 for it. */
  gone: boolean;
  observedAt: number;
  source: StateSource;
  receivedAt?: number;
}

/** Anything the publish rule takes. */
export type PublishedState = InvitationState | OrganizationState;

/**
 * - `inserted`: first state of that invitation in the shared state.
 * - `updated`: replaced an older state, or the same version with other content or presence.
 * - `unchanged`: the state held already; only its confirmation time moved.
 * - `stale`: older than what is held; nothing written.
 */
export type PublishOutcome = 'inserted' | 'updated' | 'unchanged' | 'stale';

export interface PublishOptions {
  /** Compare only: nothing is written (reconcile --dry-run). @defaultValue false */
  dryRun?: boolean;
  /** Also return each invitation's state before this publish (header and fields). @defaultValue false */
  withPrevious?: boolean;
  /** Refuse (EpochChangedError) unless the state is still this epoch. */
  expectEpoch?: string;
  /**
   * This publish ends a complete listing of the organizations: from the change after it on,
   * an organization the shared state does not know does not exist. @defaultValue false
   */
  organizationsListed?: boolean;
  /** A maintenance record written in the same script: `value` undefined deletes it. */
  record?: { name: string; value: unknown };
}

export interface PublishResult {
  epoch: string | undefined;
  outcomes: PublishOutcome[];
  /** With `withPrevious`: what was held before, undefined where nothing was. */
  previous?: (Omit<StoredState, 'raw'> | undefined)[];
}

/** The state was replaced (Redis lost its data) since the caller last looked; its work belongs to another epoch. */
export class EpochChangedError extends Error {
  override name = 'EpochChangedError';
  constructor(readonly epoch: string | undefined) {
    super('the shared state in Redis was replaced (a new epoch) while this run worked on the previous one');
  }
}

export interface StatePublisherOptions {
  connection: Redis;
  keys: MirrorKeys;
  /** How long the change stream keeps an entry, in ms (CHANGE_STREAM_RETENTION_MS). */
  retentionMs: number;
}

/** A candidate epoch for a state that does not exist yet; random so two new states never share one. */
export const epochCandidate = () => randomBytes(6).toString('hex');

/** The content hash of every existing organization: its existence is all that is compared. */
const ORGANIZATION_HASH = 'org';

/** Arguments of one state for scripts/publish.lua. */
function stateArgs(s: PublishedState): (string | number)[] {
  const r = s.receivedAt ?? '';
  if (s.kind === 'organization') {
    // Version 0 always: the later observation decides, and a rename is not a change.
    const tail = encodeTail({ organizationId: s.id, emailAddress: null, status: null, expiresAt: null, createdAt: null, source: s.source }, null);
    return [s.id, 0, s.gone ? '1' : '0', s.observedAt, s.gone ? '' : ORGANIZATION_HASH, tail, r, '', ''];
  }
  if (s.kind === 'present') {
    const inv = s.invitation;
    const expiry = inv.status === 'pending' && typeof inv.expires_at === 'number' ? inv.expires_at : '';
    return [inv.id, inv.updated_at, '0', s.observedAt, contentHash(inv), encodeTail(fieldsOf(inv, s.source), s.raw ?? JSON.stringify(inv)), r, expiryMember(inv.organization_id, inv.id), expiry];
  }
  const tail = encodeTail({ organizationId: s.organizationId, emailAddress: null, status: null, expiresAt: null, createdAt: null, source: s.source }, null);
  return [s.id, s.knownUpdatedAt ?? 0, '1', s.observedAt, '', tail, r, expiryMember(s.organizationId, s.id), ''];
}

export const stateId = (s: PublishedState) => (s.kind === 'present' ? s.invitation.id : s.id);

/** Publishes canonical states into the shared state through scripts/publish.lua, one script run per call. */
export class StatePublisher {
  private readonly scripts: StateScripts;

  constructor(private readonly opts: StatePublisherOptions) {
    this.scripts = stateScripts(opts.connection);
  }

  async publish(states: readonly PublishedState[], o: PublishOptions = {}): Promise<PublishResult> {
    const { keys, retentionMs } = this.opts;
    const flags = `${o.dryRun ? 'd' : ''}${o.withPrevious ? 'p' : ''}${o.organizationsListed ? 'o' : ''}`;
    const record = o.record ? [o.record.name, o.record.value === undefined ? '' : JSON.stringify(o.record.value)] : ['', ''];
    const args: (string | number)[] = [epochCandidate(), retentionMs, flags, o.expectEpoch ?? '', ...record];
    for (const s of states) args.push(...stateArgs(s));
    const reply = (await this.scripts.publish([keys.meta, keys.snapshot, keys.changes, keys.records, keys.expiries, keys.organizations], args)) as [string, string | null, unknown[]];
    const epoch = reply[1] ?? undefined;
    if (reply[0] === 'epoch_changed') throw new EpochChangedError(epoch);
    const raw = reply[2] ?? [];
    if (!o.withPrevious) return { epoch, outcomes: raw as PublishOutcome[] };
    const pairs = raw as [PublishOutcome, string | null][];
    return {
      epoch,
      outcomes: pairs.map((p) => p[0]),
      previous: pairs.map((p, i) => (p[1] ? decodeHeader(stateId(states[i]!), p[1]) : undefined)),
    };
  }
}
