// Not a benchmark: profiles the worker draining a backlog of 5,000 jobs (simulator in a child
// process) with the inspector's sampling profiler and prints inclusive time per function.
// `C=16 tsx bench/profile-worker.ts`; `NOPROF=1` for CPU per job without the profiler.
import { Session } from 'node:inspector/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { SyncQueue } from '../src/queue/sync-queue.ts';
import { connectRedis } from '../src/redis/connection.ts';
import { selfCpuUs, startBackend, startBenchService, withResources } from './harness.ts';

const conc = Number(process.env.C ?? 16);
const N = 5000;
await withResources('profile-worker', async (dir, defer) => {
  const backend = await startBackend(dir, defer, { kind: 'seed', organizations: 50, invitationsPerOrganization: 100 });
  const conn = connectRedis(backend.redisUrl);
  defer(() => void conn.quit());
  const q = new SyncQueue({ connection: conn });
  defer(() => q.close());
  const inv = backend.invitations;
  for (let i = 0; i < N; i += 500) await Promise.all(inv.slice(i, i + 500).map((d) => q.enqueue({ organizationId: String(d.organization_id), invitationId: String(d.id), receivedAt: Date.now(), reason: 'x' })));
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
  const parent = new Map<number, number>();
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (id: number) => { const f = byId.get(id)!.callFrame; const url = f.url.replace(/^file:\/\/\/work\/main\//, ''); return `${f.functionName || '(anon)'} ${url.split('/').slice(-2).join('/')}:${f.lineNumber}`; };
  const incl = new Map<string, number>(); let total = 0;
  const dt = profile.timeDeltas ?? [];
  (profile.samples ?? []).forEach((id, i) => {
    const d = dt[i] ?? 0; total += d;
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) seen.add(key(cur));
    for (const k of seen) incl.set(k, (incl.get(k) ?? 0) + d);
  });
  const pick = (re: RegExp) => [...incl].filter(([k]) => re.test(k)).sort((a, b) => b[1] - a[1]).slice(0, 60).map(([k, t]) => `${(t / total * 100).toFixed(1).padStart(5)}%  ${(t / N).toFixed(0).padStart(5)}us/job  ${k}`).join('\n');
  console.log(pick(/./));
  await w.stop();
});
