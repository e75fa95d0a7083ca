import { loadavg } from 'node:os';
import { defaultRateLimit } from '../src/config.ts';
import { round, runLoadClient, startBackend, startBenchService, webhookUrlOf, withResources } from './harness.ts';
import type { SendOutput } from './load-client.ts';
import type { Benchmark } from './result.ts';

const BULK = 1000;

/**
 * A bulk invite: 1,000 new invitations of one organization, their webhooks posted within a
 * second, at a development key's limit (100 requests per 10 s, the mirror's default share of
 * it). What it costs Clerk's budget, and how long until the replica has every one.
 */
export const burstBulkBench: Benchmark = {
  name: 'burst.bulk_calls',
  async run() {
    return withResources('burst-bulk', async (dir, defer) => {
      const backend = await startBackend(dir, defer, { kind: 'create', organizations: 1, invitations: BULK }, { limits: { rateLimit: 100, rateWindowMs: 10_000, latencyMs: 0 } });
      // A sk_test_ key's default share (config.ts), not the bench's unlimited one.
      const service = await startBenchService(backend, defer, { roles: ['receiver', 'worker', 'replica'], env: { BAPI_RATE_LIMIT: String(defaultRateLimit(backend.secretKey)) } });
      const before = await backend.simStats();
      const out = await runLoadClient<SendOutput>(
        {
          mode: 'send',
          url: webhookUrlOf(service),
          secret: backend.signingSecret,
          events: { kind: 'given', data: backend.invitations },
          concurrency: 32,
          ratePerS: 2 * BULK,
          poll: { dbPath: backend.dbPath, intervalMs: 5, timeoutMs: 120_000, skipFirst: 0 },
        },
        180_000,
      );
      const after = await backend.simStats();
      const lag = out.lag!;
      if (out.ok !== BULK || lag.missing > 0) throw new Error(`bulk run incomplete: ${out.ok}/${BULK} accepted, ${lag.missing} rows never seen`);
      return [
        {
          name: 'burst.bulk_calls',
          value: after.requests - before.requests,
          unit: `BAPI calls for ${BULK} new invitations of one organization`,
          baseline: null,
          ratio: null,
          target: '<= 10 calls; report the seconds until the replica has all',
          extra: {
            seconds_to_all: round(lag.max / 1000, 2),
            p50_visible_ms: lag.p50,
            rate_limited: after.rateLimited - before.rateLimited,
            posted_per_s: Math.round(out.achievedRate),
            batch_pages: service.stats.batches.pages,
            deferred_jobs: service.stats.jobs.deferred,
            skipped_jobs: service.stats.jobs.skipped,
            loadavg_1m: round(loadavg()[0]!, 2),
          },
        },
      ];
    });
  },
};
