// Not a benchmark: what SQLite alone costs the backfill here. Writes 100,000 invitations
// through MirrorWriter.writeMany in 500-row transactions (one per BAPI page, as the backfill
// does) into a fresh mirror file, and into `:memory:` (no file I/O), and prints µs per row
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
const invitations = invitationIds.map((id) => sim.store.getInvitation(id) as unknown as InvitationJSON);
await sim.close();

const dir = mkdtempSync(join(tmpdir(), 'cim-sqlite-floor-'));
try {
  for (const target of ['file', ':memory:'] as const) {
    const conn = openMirrorDb({ path: target === 'file' ? join(dir, 'mirror.db') : ':memory:' });
    migrateMirror(conn);
    const writer = new MirrorWriter(conn);
    const observedAt = Date.now();
    const t0 = performance.now();
    for (let i = 0; i < ROWS; i += PAGE) {
      writer.writeMany(invitations.slice(i, i + PAGE).map((invitation): InvitationWrite => ({ kind: 'present', invitation, observedAt, source: 'backfill' })));
    }
    const usPerRow = ((performance.now() - t0) * 1000) / ROWS;
    console.log(`${target.padEnd(9)} ${usPerRow.toFixed(1)} µs/row in ${PAGE}-row transactions → at most ${Math.round(1e6 / usPerRow)} rows/s from SQLite alone`);
    conn.sqlite.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
