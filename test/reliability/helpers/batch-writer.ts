// Child process for the crash test: rewrites every one of `rows` invitations in one
// transaction per batch (MirrorWriter.writeMany, BEGIN IMMEDIATE), batch after batch, with
// every row of batch k at `updated_at` k. Prints "committed k" after each commit, until killed.
import { openMirrorDb } from '../../../src/mirror/open.ts';
import { migrateMirror } from '../../../src/mirror/migrate.ts';
import { MirrorWriter, type InvitationWrite } from '../../../src/mirror/upsert.ts';

const [path, rowsArg, fromArg] = process.argv.slice(2);
const rows = Number(rowsArg);
const conn = openMirrorDb({ path: path! });
migrateMirror(conn);
const writer = new MirrorWriter(conn);
for (let k = Number(fromArg ?? 1); ; k++) {
  const writes: InvitationWrite[] = [];
  for (let i = 0; i < rows; i++) {
    const invitation = {
      object: 'organization_invitation' as const,
      id: `orginv_batch${i}`,
      organization_id: `org_batch${i % 10}`,
      email_address: `row${i}.v${k}@example.com`,
      role: 'org:member',
      status: (['pending', 'accepted', 'revoked', 'expired'] as const)[k % 4],
      public_metadata: { batch: k },
      private_metadata: {},
      expires_at: 1_000_000 + k,
      created_at: k,
      updated_at: k,
    };
    writes.push({ kind: 'present', invitation, raw: JSON.stringify(invitation), observedAt: Date.now(), source: 'backfill' });
  }
  writer.writeMany(writes);
  process.stdout.write(`committed ${k}\n`);
}
