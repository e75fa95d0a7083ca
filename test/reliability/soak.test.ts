// Soak (npm run test:chaos only): 200,000 events through the whole pipeline (simulator ->
// Svix-like delivery -> receiver -> Redis -> worker -> SQLite), the service's RSS sampled
// every 10 s. After warm-up it must stay within 20% of the first post-warm-up sample, and the
// mirror must equal the truth at the end. SOAK_EVENTS overrides the count (for trial runs).
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import type { Simulator } from '../../src/simulator/index.ts';
import { spawnService, startRedis, type RedisProc, type ServiceProc } from './helpers/procs.ts';
import { CHAOS, busyJobs, credentials, duplicateRows, queueOf, recordResult, runLoad, scanLogs, releaseScenario, scratchDir, startSim, waitConverged, serviceEnv } from './helpers/scenario.ts';

const EVENTS = Number(process.env.SOAK_EVENTS ?? 200_000);
const RATE = Number(process.env.SOAK_RATE ?? 400);
const SQLITE_CACHE_MIB = 64;
const SAMPLE_MS = 10_000;

describe.skipIf(!CHAOS)('soak', () => {
  // Made when the test runs: a skipped suite's afterAll never runs, and `npm test` skips this one.
  let tmp: ReturnType<typeof scratchDir> | undefined;
  const creds = credentials();
  let redis: RedisProc | undefined;
  let sim: Simulator | undefined;
  let service: ServiceProc | undefined;
  let q: ReturnType<typeof queueOf> | undefined;

  afterAll(() => (tmp ? releaseScenario(tmp, { q, services: [service], sim, redis }) : undefined));

  it(`${EVENTS} events: anonymous RSS within 20% after warm-up, mirror equals truth`, { timeout: 4 * 3600_000 }, async () => {
    tmp = scratchDir('soak');
    redis = await startRedis(join(tmp.path, 'redis'), { fsync: 'everysec' });
    sim = await startSim(creds);
    const dbPath = join(tmp.path, 'mirror.db');
    service = await spawnService({
      ...serviceEnv(creds, sim, redis, dbPath),
      LOG_LEVEL: 'info',
      BAPI_RATE_LIMIT: '1000000',
    });
    q = queueOf(redis.url);
    sim.delivery.addEndpoint(`${service.url}/webhooks/clerk`);

    const samples: { atS: number; rssMiB: number; anonMiB: number; fileMiB: number; dbMiB: number; events: number }[] = [];
    const fileMiB = (path: string) => {
      try {
        return statSync(path).size / 2 ** 20;
      } catch {
        return 0;
      }
    };
    const sample = () => {
      const r = service!.rssParts();
      const mib = (b: number) => +(b / 2 ** 20).toFixed(1);
      // The main file only: pages still in the WAL are also in the cache, but counting the
      // WAL (up to ~40 MiB before a checkpoint) would call the cache full long before it is.
      const dbMiB = +fileMiB(dbPath).toFixed(1);
      samples.push({ atS: Math.round((Date.now() - started) / 1000), rssMiB: mib(r.total), anonMiB: mib(r.anon), fileMiB: mib(r.file), dbMiB, events: done });
    };
    const started = Date.now();
    let done = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        sample();
        await sleep(SAMPLE_MS);
      }
    })();
    const load = await runLoad(sim, { events: EVENTS, ratePerSec: RATE, organizations: 200, onTick: (n) => void (done = n) });
    const result = await waitConverged({ sim, queue: q.queue, dbPath, ids: load.touched, timeoutMs: 30 * 60_000 });
    sampling = false;
    await sampler;
    sample();

    // Warm-up: the first fifth of the run (at least a minute), and until the mirror file has
    // outgrown SQLite's page cache (cache_size 64 MiB, see src/mirror/open.ts): until then the
    // cache fills by design, and anonymous memory grows with it.
    const cacheFullAt = samples.find((x) => x.dbMiB >= SQLITE_CACHE_MIB)?.atS ?? 0;
    const warmS = Math.max(60, samples.at(-1)!.atS / 5, cacheFullAt);
    const steady = samples.filter((s) => s.atS >= warmS);
    // The criterion is on anonymous memory (what a leak grows); file-backed pages are the
    // mirror file mapped by SQLite (mmap_size 256 MiB) and grow with the database itself.
    const baseline = steady[0]?.anonMiB ?? samples.at(-1)!.anonMiB;
    const maxMiB = Math.max(...steady.map((s) => s.anonMiB));
    const minMiB = Math.min(...steady.map((s) => s.anonMiB));
    const totalBaseline = steady[0]?.rssMiB ?? samples.at(-1)!.rssMiB;
    const totalMax = Math.max(...steady.map((s) => s.rssMiB));
    const fileFinal = samples.at(-1)!.fileMiB;
    const delivery = sim.delivery.stats();
    const logs = scanLogs(service.output(), creds);
    recordResult('soak', {
      eventsSent: load.events,
      invitations: load.touched.size,
      loadMs: load.ms,
      eventsPerSecond: Math.round(load.events / (load.ms / 1000)),
      acknowledged: delivery.delivered,
      webhookFailedAttempts: delivery.failedAttempts,
      inMirror: result.comparison.equal,
      lost: result.comparison.missing.length + result.comparison.different.length,
      duplicateRows: duplicateRows(dbPath),
      convergeMsAfterLoad: result.ms,
      warmUpS: warmS,
      cacheFullAtS: cacheFullAt,
      anonBaselineMiB: baseline,
      anonMaxMiB: maxMiB,
      anonMinMiB: minMiB,
      anonMaxVsBaselinePct: +(((maxMiB - baseline) / baseline) * 100).toFixed(1),
      rssBaselineMiB: totalBaseline,
      rssMaxMiB: totalMax,
      rssMaxVsBaselinePct: +(((totalMax - totalBaseline) / totalBaseline) * 100).toFixed(1),
      fileBackedFinalMiB: fileFinal,
      dbFileMiB: +(statSync(dbPath).size / 2 ** 20).toFixed(1),
      samples,
      logSecretHits: logs.secrets,
      logEmails: logs.emails,
    });
    expect(result.comparison.missing).toEqual([]);
    expect(result.comparison.different).toEqual([]);
    expect(delivery.exhausted).toBe(0);
    expect(await busyJobs(q.queue)).toBe(0);
    expect(steady.length).toBeGreaterThan(0);
    expect(maxMiB).toBeLessThanOrEqual(baseline * 1.2);
    expect(minMiB).toBeGreaterThanOrEqual(baseline * 0.8);
    expect(logs.secrets).toEqual([]);
    expect(logs.emails).toEqual([]);
  });
});
