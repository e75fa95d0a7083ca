// Not a benchmark: profiles the worker draining a backlog of 5,000 jobs (simulator in a child
// process) with the inspector's sampling profiler and prints inclusive time per function.
// `C=16 tsx bench/profile-worker.ts`; `NOPROF=1` for CPU per job without the profiler.
import { Session } from 'node:inspector/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { SyncQueue } from '../src/queue/sync-queue.ts';
import { mirrorKeys } from '../src/state/keys.ts';
import { connectRedis } from '../src/redis/connection.ts';
import { selfCpuUs, startBackend, startBenchService, withResources } from './harness.ts';
import { summarizeProfile } from './profile-summary.ts';

const conc = Number(process.env.C ?? 16);
const N = 5000;
await withResources('profile-worker', async (dir, defer) => {
  const backend = await startBackend(dir, defer, { kind: 'seed', organizations: 50, invitationsPerOrganization: 100 });
  const conn = connectRedis(backend.redisUrl);
  defer(() => void conn.quit());
  const q = new SyncQueue({ connection: conn, keys: mirrorKeys() });
  defer(() => q.close());
  const inv = backend.invitations;
  for (let i = 0; i < N; i += 500) await Promise.all(inv.slice(i, i + 500).map((d) => q.enqueue({ organizationId: String(d.organization_id), invitationId: String(d.id), eventUpdatedAt: Number(d.updated_at), receivedAt: Date.now(), reason: 'organizationInvitation.created' })));
  await sleep(400);
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 250 });
  if (!process.env.NOPROF) await session.post('Profiler.start');
  const c0 = selfCpuUs(); const r0 = backend.redisCpuUs(); const s0 = backend.simCpuUs(); const t0 = performance.now();
  const w = await startBenchService(backend, defer, { roles: ['worker'], concurrency: conc });
  while (w.stats.jobs.completed < N) await sleep(5);
  const ms = performance.now() - t0;
  console.log(`C=${conc}: ${(N / ms * 1000).toFixed(0)} jobs/s, node cpu us/job ${((selfCpuUs() - c0) / N).toFixed(0)}, redis ${((backend.redisCpuUs() - r0) / N).toFixed(0)}, sim ${((backend.simCpuUs() - s0) / N).toFixed(0)}`);
  if (process.env.NOPROF) { await w.stop(); return; }
  const { profile } = await session.post('Profiler.stop');
  console.log(summarizeProfile(profile, { units: N, unit: 'job', inclusive: 60 }));
  await w.stop();
});
