// Not a benchmark: what the worker pays for a batch page against single GETs, to choose the
// batch threshold (worker/batch.ts). Node and Redis CPU, and wall time, per way of fetching
// and publishing invitations of one organization: a list page of 500 (parsed, shaped,
// published: all 500), and single GETs (each parsed and published), against the simulator in
// a child process. `tsx bench/batch-cost.ts`.
import { cpuUsage } from 'node:process';
import { BapiClient } from '../src/bapi/client.ts';
import { connectRedis } from '../src/redis/connection.ts';
import { mirrorKeys } from '../src/state/keys.ts';
import { StatePublisher } from '../src/state/publisher.ts';
import { startBackend, withResources } from './harness.ts';

const PER_ORG = 500;
const ROUNDS = 4;

await withResources('batch-cost', async (dir, defer) => {
  const backend = await startBackend(dir, defer, { kind: 'create', organizations: 1, invitations: PER_ORG });
  const connection = connectRedis(backend.redisUrl);
  defer(() => void connection.quit().catch(() => connection.disconnect()));
  const publisher = new StatePublisher({ connection, keys: mirrorKeys('batch-cost'), retentionMs: 3_600_000 });
  const bapi = new BapiClient({ apiUrl: backend.simUrl, secretKey: backend.secretKey });
  const org = String(backend.invitations[0]!.organization_id);
  const ids = backend.invitations.map((i) => String(i.id));
  const measure = async (name: string, fn: () => Promise<void>) => {
    const c0 = cpuUsage();
    const r0 = backend.redisCpuUs();
    const t0 = performance.now();
    await fn();
    const c = cpuUsage(c0);
    return { name, nodeUs: c.user + c.system, redisUs: backend.redisCpuUs() - r0, wallMs: performance.now() - t0 };
  };
  const rows: Record<string, { nodeUs: number[]; redisUs: number[]; wallMs: number[] }> = {};
  // Many of each per round: /proc's CPU times tick in 10 ms.
  const PAGES = 20;
  const SINGLES = 500;
  for (let round = 0; round < ROUNDS; round++) {
    const results = [
      await measure('one page of 500', async () => {
        for (let p = 0; p < PAGES; p++) {
          const page = await bapi.listOrganizationInvitations(org, { limit: 500, offset: 0, orderBy: '-created_at' });
          await publisher.publish(page.data.map((invitation) => ({ kind: 'present', invitation, observedAt: Date.now(), source: 'webhook' })));
        }
      }),
      await measure('one single GET', async () => {
        for (let i = 0; i < SINGLES; i += 10) {
          await Promise.all(
            ids.slice(i, i + 10).map(async (id) => {
              const got = await bapi.getOrganizationInvitation(org, id);
              await publisher.publish([{ kind: 'present', invitation: got.invitation, raw: got.raw, observedAt: Date.now(), source: 'webhook' }]);
            }),
          );
        }
      }),
    ];
    // Round 0 warms V8 and the scripts up.
    if (round === 0) continue;
    for (const [r, n] of [[results[0]!, PAGES], [results[1]!, SINGLES]] as const) {
      const row = (rows[r.name] ??= { nodeUs: [], redisUs: [], wallMs: [] });
      row.nodeUs.push(r.nodeUs / n);
      row.redisUs.push(r.redisUs / n);
      row.wallMs.push(r.wallMs / n);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const single = rows['one single GET']!;
  for (const [name, r] of Object.entries(rows)) {
    console.log(
      `${name.padEnd(16)} node ${Math.round(median(r.nodeUs))} µs, redis ${Math.round(median(r.redisUs))} µs, wall ${median(r.wallMs).toFixed(1)} ms` +
        ` = ${(median(r.nodeUs) / median(single.nodeUs)).toFixed(1)} single GETs of worker CPU`,
    );
  }
});
