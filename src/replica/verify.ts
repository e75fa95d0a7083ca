import { organizationInvitations as inv, organizations as orgs } from '../mirror/schema.ts';
import type { MirrorConnection } from '../mirror/open.ts';
import type { StoredState } from '../state/codec.ts';
import type { SharedState } from '../state/shared-state.ts';

export interface VerifyReport {
  /** States of the shared state checked (invitations and organizations), and rows of the file. */
  stateSize: number;
  fileRows: number;
  /** In the state, not in the file. */
  missing: string[];
  /** In the file, not in the state. */
  extra: string[];
  /** In both, with another version, presence or JSON. */
  different: string[];
}

export const isEqualReport = (r: VerifyReport) => r.missing.length + r.extra.length + r.different.length === 0;

type Row = Pick<typeof inv.$inferSelect, 'id' | 'updatedAt' | 'deletedAt' | 'raw'>;

function differs(s: StoredState, row: Row): boolean {
  if (s.deleted !== (row.deletedAt !== null) || s.updatedAt !== row.updatedAt) return true;
  return !s.deleted && s.raw !== row.raw;
}

/**
 * Compares a replica file with the shared state, invitation by invitation. While changes keep
 * flowing, a difference may only mean the replica has not applied them yet: `recheck` looks
 * at each difference once more (after the caller's pause) and keeps only those that remain.
 */
export async function verifyReplica(conn: MirrorConnection, state: SharedState, { recheckAfterMs = 0 } = {}): Promise<VerifyReport> {
  const rows = () =>
    new Map<string, Row>([
      ...conn.db.select({ id: inv.id, updatedAt: inv.updatedAt, deletedAt: inv.deletedAt, raw: inv.raw }).from(inv).all().map((r) => [r.id, r] as const),
      // An organization's state has no version and no JSON (state/publisher.ts).
      ...conn.db.select({ id: orgs.id, deletedAt: orgs.deletedAt }).from(orgs).all().map((r) => [r.id, { ...r, updatedAt: 0, raw: null }] as const),
    ]);
  let file = rows();
  const report: VerifyReport = { stateSize: 0, fileRows: file.size, missing: [], extra: [], different: [] };
  const inState = new Set<string>();
  for (const of of ['invitations', 'organizations'] as const) {
    for await (const batch of state.scan(1000, of)) {
      for (const s of batch) {
        if (inState.has(s.id)) continue;
        inState.add(s.id);
        const row = file.get(s.id);
        if (!row) report.missing.push(s.id);
        else if (differs(s, row)) report.different.push(s.id);
      }
    }
  }
  report.stateSize = inState.size;
  for (const id of file.keys()) if (!inState.has(id)) report.extra.push(id);
  if (recheckAfterMs <= 0 || isEqualReport(report)) return report;

  await new Promise((r) => setTimeout(r, recheckAfterMs));
  file = rows();
  const still = async (id: string) => {
    const s = await state.get(id);
    const row = file.get(id);
    return s ? !row || differs(s, row) : !!row;
  };
  const keep = async (ids: string[]) => (await Promise.all(ids.map(async (id) => ((await still(id)) ? id : undefined)))).filter((x): x is string => !!x);
  return { ...report, fileRows: file.size, missing: await keep(report.missing), extra: await keep(report.extra), different: await keep(report.different) };
}
