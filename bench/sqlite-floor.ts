// Not a benchmark: what SQLite alone costs the backfill here. Writes 100,000 invitations, in
// the order BAPI lists them, through MirrorWriter.writeMany in 500-row transactions (one per
// page, as the backfill does) into a fresh mirror file, without its secondary indexes, and into `:memory:` (no file I/O), and prints µs per row
// and the rows/s that cost alone allows. `tsx bench/sqlite-floor.ts`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrateMirror } from '../src/mirror/migrate.ts';
import { openMirrorDb } from '../src/mirror/open.ts';
import { MirrorWriter, type InvitationWrite } from '../src/mirror/upsert.ts';
import { startSimulator } from '../src/simulator/index.ts';
import type { InvitationJSON } from '../src/clerk/types.ts';

const ROWS = 100_000;
const PAGE = 500;
const sim = await startSimulator({ secretKey: 'sk_test_floor', signingSecret: `whsec_${Buffer.alloc(32, 1).toString('base64')}`, rateLimit: 0 });
const { invitationIds } = sim.store.seed({ organizations: ROWS / 100, invitationsPerOrganization: 100 });
// In the order the backfill receives them: the instance-wide list by +created_at.
const invitations = invitationIds.map((id) => sim.store.getInvitation(id) as unknown as InvitationJSON).sort((a, b) => a.created_at - b.created_at);
await sim.close();

const dir = mkdtempSync(join(tmpdir(), 'cim-sqlite-floor-'));
try {
  const variants = [
    { name: 'file', path: join(dir, 'a.db'), dropIndexes: false },
    { name: 'file, no secondary index', path: join(dir, 'b.db'), dropIndexes: true },
    { name: ':memory:', path: ':memory:', dropIndexes: false },
  ];
  for (const v of variants) {
    const conn = openMirrorDb({ path: v.path });
    migrateMirror(conn);
    // The lower bound of any schema: only the primary key's own b-tree is left.
    if (v.dropIndexes) {
      for (const { name } of conn.sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'organization_invitations' AND sql IS NOT NULL").all() as { name: string }[]) {
        conn.sqlite.exec(`DROP INDEX ${name}`);
      }
    }
    const writer = new MirrorWriter(conn);
    const observedAt = Date.now();
    const t0 = performance.now();
    for (let i = 0; i < ROWS; i += PAGE) {
      writer.writeMany(invitations.slice(i, i + PAGE).map((invitation): InvitationWrite => ({ kind: 'present', invitation, observedAt, source: 'backfill' })));
    }
    const usPerRow = ((performance.now() - t0) * 1000) / ROWS;
    console.log(`${v.name.padEnd(26)} ${usPerRow.toFixed(1)} µs/row in ${PAGE}-row transactions → at most ${Math.round(1e6 / usPerRow)} rows/s from SQLite alone`);
    conn.sqlite.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
