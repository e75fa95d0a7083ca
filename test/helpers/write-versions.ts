// Child process for the concurrency tests: writes the given versions of five invitations,
// each version in its own transaction, as a replica applies changes, while other processes read.
import { openMirrorDb } from '../../src/mirror/open.ts';
import { ReplicaWriter } from '../../src/replica/writer.ts';
import { storedStateOf } from '../../src/state/codec.ts';
import { invitation } from './fixtures.ts';

const [path, versionsJson] = process.argv.slice(2);
const conn = openMirrorDb({ path: path! });
const writer = new ReplicaWriter(conn);
for (const v of JSON.parse(versionsJson!) as number[]) {
  writer.apply(Array.from({ length: 5 }, (_, i) => storedStateOf(invitation({ id: `orginv_c${i}`, organization_id: 'org_c', updated_at: v }), { source: 'webhook' })));
}
conn.sqlite.close();
