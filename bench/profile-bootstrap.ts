// Not a benchmark: profiles one replica loading a 100,000-invitation snapshot into an empty
// file (as replica.bootstrap_s does) and prints time per function, per invitation.
// `tsx bench/profile-bootstrap.ts`.
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { mirrorKeys } from '../src/state/keys.ts';
import { StatePublisher } from '../src/state/publisher.ts';
import { SharedState } from '../src/state/shared-state.ts';
import { withResources } from './harness.ts';
import { summarizeProfile } from './profile-summary.ts';
import { invitations, openFile, present, publishAll, redisWithClient, timeReplica } from './replica.ts';

await withResources('profile-bootstrap', async (dir, defer) => {
  const { url, r } = await redisWithClient(dir, defer);
  const keys = mirrorKeys();
  const invs = invitations();
  await publishAll(new StatePublisher({ connection: r, keys, retentionMs: 3_600_000 }), invs.map((i) => present(i)));
  const state = new SharedState(r, keys);
  await state.writeRecords((await state.ensure()).epoch, {}, { filled: true });
  const conn = openFile(join(dir, 'm.db'));
  defer(() => void conn.sqlite.close());
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  const run = await timeReplica(conn, url);
  const { profile } = await session.post('Profiler.stop');
  await run.close();
  console.log(`${invs.length} invitations in ${Math.round(run.ms)} ms`);
  console.log(summarizeProfile(profile, { units: invs.length, unit: 'invitation', inclusive: 30, self: 25 }));
});
