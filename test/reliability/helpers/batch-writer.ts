// Child process for the crash test: rewrites every one of `rows` invitations in one
// transaction per batch (ReplicaWriter.apply, BEGIN IMMEDIATE), batch after batch, with
// every row of batch k at `updated_at` k. Prints "committed k" after each commit, until killed.
import { openMirrorDb } from '../../../src/mirror/open.ts';
import { migrateMirror } from '../../../src/mirror/migrate.ts';
import { ReplicaWriter } from '../../../src/replica/writer.ts';
import { storedStateOf, type StoredState } from '../../../src/state/codec.ts';

const [path, rowsArg, fromArg] = process.argv.slice(2);
const rows = Number(rowsArg);
const conn = openMirrorDb({ path: path! });
migrateMirror(conn);
const writer = new ReplicaWriter(conn);
for (let k = Number(fromArg ?? 1); ; k++) {
  const writes: StoredState[] = [];
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
    writes.push(storedStateOf(invitation));
  }
  writer.apply(writes);
  process.stdout.write(`committed ${k}\n`);
}
