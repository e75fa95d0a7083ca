// Not a benchmark: profiles the receiver under 8 s of load from the raw-socket client (bench/raw-load.ts, in a child process)
// and prints inclusive time per function, per request. `tsx bench/profile-receiver.ts`.
import { Session } from 'node:inspector/promises';
import { runLoadClient, startBackend, startBenchService, webhookUrlOf, withResources } from './harness.ts';
import type { AutocannonOutput } from './load-client.ts';
import { summarizeProfile } from './profile-summary.ts';

await withResources('profile-receiver', async (dir, defer) => {
  const backend = await startBackend(dir, defer);
  const w = await startBenchService(backend, defer, { roles: ['receiver'] });
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 250 });
  await session.post('Profiler.start');
  const out = await runLoadClient<AutocannonOutput>({ mode: 'raw', url: webhookUrlOf(w), secret: backend.signingSecret, events: { kind: 'synthetic', count: 60000, organizations: 100, salt: 'p' }, connections: 50, warmupS: 0, durationS: 8 }, 120_000);
  const { profile } = await session.post('Profiler.stop');
  const N = out.sent;
  console.log(out);
  console.log(summarizeProfile(profile, { units: N, unit: 'req', inclusive: 90 }));
  await w.stop();
});
