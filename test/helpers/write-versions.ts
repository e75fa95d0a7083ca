// Child process for the concurrency tests: writes the given versions of five invitations,
// each version in its own transaction, competing with other processes for the write lock.
import { openMirrorDb } from '../../src/mirror/open.ts';
import { MirrorWriter } from '../../src/mirror/upsert.ts';
import { invitation } from './fixtures.ts';

const [path, versionsJson] = process.argv.slice(2);
const conn = openMirrorDb({ path: path! });
const writer = new MirrorWriter(conn);
for (const v of JSON.parse(versionsJson!) as number[]) {
  for (let i = 0; i < 5; i++) {
    writer.write({
      kind: 'present',
      invitation: invitation({ id: `orginv_c${i}`, organization_id: 'org_c', updated_at: v }),
      observedAt: Date.now(),
      source: 'webhook',
    });
  }
}
conn.sqlite.close();
