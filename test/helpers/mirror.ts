import { join } from 'node:path';
import { migrateMirror } from '../../src/mirror/migrate.ts';
import { openMirrorDb } from '../../src/mirror/open.ts';
import { MirrorWriter } from '../../src/mirror/upsert.ts';
import type { InvitationJSON } from '../../src/clerk/types.ts';

/** Creates a migrated mirror file holding `invitations` (raw text kept when given). */
export function seedMirror(dir: string, name: string, invitations: (InvitationJSON | { raw: string })[]): string {
  const path = join(dir, name);
  const conn = openMirrorDb({ path });
  migrateMirror(conn);
  new MirrorWriter(conn).writeMany(
    invitations.map((i) => {
      const raw = 'raw' in i && typeof i.raw === 'string' ? i.raw : JSON.stringify(i);
      return { kind: 'present' as const, invitation: JSON.parse(raw) as InvitationJSON, raw, observedAt: Date.now(), source: 'backfill' as const };
    }),
  );
  conn.sqlite.close();
  return path;
}
