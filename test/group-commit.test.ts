import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { GroupCommitWriter } from '../src/mirror/group-commit.ts';
import { migrateMirror } from '../src/mirror/migrate.ts';
import { openMirrorDb, type MirrorConnection } from '../src/mirror/open.ts';
import { MirrorWriter, type InvitationWrite } from '../src/mirror/upsert.ts';
import { invitation, tempDir } from './helpers/fixtures.ts';

const tmp = tempDir();
afterAll(tmp.cleanup);
let n = 0;
let conn: MirrorConnection;
let writer: GroupCommitWriter;
beforeEach(() => {
  conn = openMirrorDb({ path: join(tmp.path, `g${n++}.db`) });
  migrateMirror(conn);
  writer = new GroupCommitWriter(new MirrorWriter(conn));
  return () => conn.sqlite.close();
});

const present = (id: string, updatedAt: number, extra: Record<string, unknown> = {}): InvitationWrite => ({
  kind: 'present',
  invitation: invitation({ id, organization_id: 'org_g1', updated_at: updatedAt, ...extra }),
  observedAt: Date.now(),
  source: 'webhook',
});
const stored = (id: string) => conn.sqlite.prepare('SELECT updated_at FROM organization_invitations WHERE id = ?').pluck().get(id);

describe('GroupCommitWriter', () => {
  it('gives each concurrent write the outcome the upsert rule gives it in arrival order', async () => {
    const outcomes = await Promise.all([present('orginv_a', 10), present('orginv_a', 20), present('orginv_a', 15), present('orginv_b', 5), present('orginv_a', 20)].map((w) => writer.write(w)));
    expect(outcomes).toStrictEqual(['inserted', 'updated', 'stale', 'inserted', 'unchanged']);
    expect(stored('orginv_a')).toBe(20);
    expect(writer.storedVersion('orginv_b')).toStrictEqual({ updatedAt: 5, deleted: false });
  });

  it('commits the writes of one turn in one transaction: one bad write rejects them all, the next turn is unaffected', async () => {
    // organization_id is NOT NULL: this row fails inside the batch's transaction.
    const bad = present('orginv_bad', 1, { organization_id: null });
    const turn = [writer.write(present('orginv_c', 1)), writer.write(bad), writer.write(present('orginv_d', 1))];
    const settled = await Promise.allSettled(turn);
    expect(settled.map((s) => s.status)).toStrictEqual(['rejected', 'rejected', 'rejected']);
    expect(stored('orginv_c')).toBeUndefined();
    expect(stored('orginv_d')).toBeUndefined();
    expect(await writer.write(present('orginv_c', 1))).toBe('inserted');
    expect(stored('orginv_c')).toBe(1);
  });
});
