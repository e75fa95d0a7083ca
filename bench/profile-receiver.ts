// Not a benchmark: profiles the receiver under 8 s of autocannon load (from a child process)
// and prints inclusive time per function, per request. `tsx bench/profile-receiver.ts`.
import { Session } from 'node:inspector/promises';
import { runLoadClient, startBackend, startBenchService, webhookUrlOf, withResources } from './harness.ts';
import type { AutocannonOutput } from './load-client.ts';

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
  console.log([...incl].sort((a, b) => b[1] - a[1]).slice(0, 90).map(([k, t]) => `${(t / total * 100).toFixed(1).padStart(5)}%  ${(t / N).toFixed(0).padStart(5)}us/req  ${k}`).join('\n'));
  await w.stop();
});
