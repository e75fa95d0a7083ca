import type { InvitationJSON } from '../clerk/types.ts';
import type { MirrorConnection } from './open.ts';
import type { InvitationSource } from './schema.ts';

/** A state of one invitation as Clerk showed it at `observedAt`. */
export type InvitationWrite =
  | {
      kind: 'present';
      invitation: InvitationJSON;
      /** The JSON text exactly as received; defaults to `JSON.stringify(invitation)` (list pages). */
      raw?: string;
      /** When Clerk answered (ms, our clock). */
      observedAt: number;
      source: InvitationSource;
    }
  | {
      /** BAPI answered 404: the invitation or its organization is gone. */
      kind: 'gone';
      id: string;
      organizationId: string;
      /** The newest `updated_at` known from elsewhere (e.g. the webhook that caused the fetch). */
      knownUpdatedAt?: number;
      observedAt: number;
      source: InvitationSource;
    };

/**
 * - `inserted`: first time seen.
 * - `updated`: replaced an older state (or revived/tombstoned at the same version, see below).
 * - `unchanged`: same version as stored; only its confirmation time moved forward.
 * - `stale`: older than what is stored; nothing written.
 */
export type UpsertOutcome = 'inserted' | 'updated' | 'unchanged' | 'stale';

interface StoredVersion {
  updated_at: number;
  confirmed_at: number;
  deleted_at: number | null;
}

/**
 * Writes invitation states under one rule: a row only moves to a newer `updated_at`. At the
 * same `updated_at` a presence/absence disagreement goes to the later observation, so a 404
 * seen after a backfill page was fetched wins over that page, and a real invitation fetched
 * after a spurious 404 revives it. A tombstone's `updated_at` is the newest version known
 * before the 404 (Clerk's clock), never our own clock, so the two clocks are never compared.
 */
export class MirrorWriter {
  private readonly selectVersion;
  private readonly insertRow;
  private readonly replaceRow;
  private readonly confirmRow;
  private readonly tombstoneRow;
  private readonly writeBatch;

  constructor(private readonly conn: MirrorConnection) {
    const db = conn.sqlite;
    this.selectVersion = db.prepare<[string], StoredVersion>(
      'SELECT updated_at, confirmed_at, deleted_at FROM organization_invitations WHERE id = ?',
    );
    const columns =
      'organization_id = @organization_id, email_address = @email_address, status = @status, expires_at = @expires_at, ' +
      'created_at = @created_at, updated_at = @updated_at, confirmed_at = @confirmed_at, source = @source, deleted_at = NULL, raw = @raw';
    this.insertRow = db.prepare(
      `INSERT INTO organization_invitations (id, organization_id, email_address, status, expires_at, created_at, updated_at, confirmed_at, source, deleted_at, raw)
       VALUES (@id, @organization_id, @email_address, @status, @expires_at, @created_at, @updated_at, @confirmed_at, @source, @deleted_at, @raw)`,
    );
    this.replaceRow = db.prepare(`UPDATE organization_invitations SET ${columns} WHERE id = @id`);
    this.confirmRow = db.prepare(
      'UPDATE organization_invitations SET confirmed_at = max(confirmed_at, @confirmed_at) WHERE id = @id',
    );
    this.tombstoneRow = db.prepare(
      `UPDATE organization_invitations SET updated_at = @updated_at, confirmed_at = @confirmed_at, deleted_at = @confirmed_at, source = @source
       WHERE id = @id`,
    );
    this.writeBatch = db.transaction((writes: readonly InvitationWrite[]) => writes.map((w) => this.applyOne(w)));
  }

  /** The stored version of an invitation (live or tombstoned), without writing. */
  storedVersion(id: string): { updatedAt: number; deleted: boolean } | undefined {
    const v = this.selectVersion.get(id);
    return v && { updatedAt: v.updated_at, deleted: v.deleted_at !== null };
  }

  /** Writes one state; see the class rule. */
  write(write: InvitationWrite): UpsertOutcome {
    return this.writeMany([write])[0]!;
  }

  /**
   * Writes many states in one transaction (one fsync, all or nothing). `BEGIN IMMEDIATE`
   * takes the write lock before reading versions, so writers in other processes cannot
   * interleave between the version check and the write.
   */
  writeMany(writes: readonly InvitationWrite[]): UpsertOutcome[] {
    if (this.conn.readonly) throw new Error('the mirror was opened read-only');
    if (writes.length === 0) return [];
    return this.writeBatch.immediate(writes);
  }

  private applyOne(w: InvitationWrite): UpsertOutcome {
    const id = w.kind === 'present' ? w.invitation.id : w.id;
    const stored = this.selectVersion.get(id);
    return w.kind === 'present' ? this.applyPresent(w, stored) : this.applyGone(w, stored);
  }

  private applyPresent(w: Extract<InvitationWrite, { kind: 'present' }>, stored: StoredVersion | undefined): UpsertOutcome {
    const inv = w.invitation;
    const row = {
      id: inv.id,
      organization_id: inv.organization_id,
      email_address: inv.email_address,
      status: inv.status ?? null,
      expires_at: inv.expires_at ?? null,
      created_at: inv.created_at,
      updated_at: inv.updated_at,
      confirmed_at: w.observedAt,
      source: w.source,
      deleted_at: null,
      raw: w.raw ?? JSON.stringify(inv),
    };
    if (!stored) {
      this.insertRow.run(row);
      return 'inserted';
    }
    const order = compareVersions(inv.updated_at, false, w.observedAt, stored);
    if (order > 0) {
      this.replaceRow.run(row);
      return 'updated';
    }
    if (order === 0) {
      this.confirmRow.run({ id: inv.id, confirmed_at: w.observedAt });
      return 'unchanged';
    }
    return 'stale';
  }

  private applyGone(w: Extract<InvitationWrite, { kind: 'gone' }>, stored: StoredVersion | undefined): UpsertOutcome {
    const version = Math.max(w.knownUpdatedAt ?? 0, stored?.updated_at ?? 0);
    if (!stored) {
      this.insertRow.run({
        id: w.id,
        organization_id: w.organizationId,
        email_address: null,
        status: null,
        expires_at: null,
        created_at: null,
        updated_at: version,
        confirmed_at: w.observedAt,
        source: w.source,
        deleted_at: w.observedAt,
        raw: null,
      });
      return 'inserted';
    }
    const order = compareVersions(version, true, w.observedAt, stored);
    if (order > 0) {
      this.tombstoneRow.run({ id: w.id, updated_at: version, confirmed_at: w.observedAt, source: w.source });
      return 'updated';
    }
    if (order === 0) {
      this.confirmRow.run({ id: w.id, confirmed_at: w.observedAt });
      return 'unchanged';
    }
    return 'stale';
  }
}

/** >0: incoming is newer; 0: same state; <0: incoming is older. */
function compareVersions(updatedAt: number, gone: boolean, observedAt: number, stored: StoredVersion): number {
  if (updatedAt !== stored.updated_at) return updatedAt - stored.updated_at;
  if (gone === (stored.deleted_at !== null)) return 0;
  return observedAt > stored.confirmed_at ? 1 : -1;
}
