import { join } from 'node:path';
import type { InvitationJSON } from '../../src/clerk/types.ts';
import { migrateMirror } from '../../src/mirror/migrate.ts';
import { openMirrorDb } from '../../src/mirror/open.ts';
import { ReplicaWriter } from '../../src/replica/writer.ts';
import { storedStateOf } from '../../src/state/codec.ts';

/** Creates a migrated mirror file holding `invitations` (raw text kept when given), as a replica would have written them. */
export function seedMirror(dir: string, name: string, invitations: (InvitationJSON | { raw: string })[]): string {
  const path = join(dir, name);
  const conn = openMirrorDb({ path });
  migrateMirror(conn);
  new ReplicaWriter(conn).apply(
    invitations.map((i) => {
      const raw = 'raw' in i && typeof i.raw === 'string' ? i.raw : JSON.stringify(i);
      return storedStateOf(JSON.parse(raw) as InvitationJSON, { raw });
    }),
  );
  conn.sqlite.close();
  return path;
}
