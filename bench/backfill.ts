import { Redis } from 'ioredis';
import { BapiClient } from '../src/bapi/client.ts';
import { createLogger } from '../src/logger.ts';
import { runBackfill } from '../src/maintenance/backfill.ts';
import { SharedRateLimiter } from '../src/bapi/rate-limiter.ts';
import { mirrorKeys } from '../src/state/keys.ts';
import { StatePublisher } from '../src/state/publisher.ts';
import { SharedState } from '../src/state/shared-state.ts';
import { startBackend, withResources } from './harness.ts';
import { ratio, type Benchmark } from './result.ts';

const ORGS = 1_000;
const PER_ORG = 100;
const LIMIT = 1_000;
const WINDOW_MS = 10_000;
const LATENCY_MS = 20;
const PAGE = 500;
const CONCURRENCY = 8;

/**
 * `backfill.rows_per_s`: a backfill of ORGS × PER_ORG invitations from the simulator (Clerk's
 * production limit, 20 ms per request; in a child process, as Clerk's CPU is not ours),
 * through the shared limiter into a fresh shared state.
 * Baseline: the limit-bound optimum, LIMIT requests × PAGE rows per window, i.e. what a
 * client that spends the whole budget on full pages and nothing else could reach.
 */
export const backfillBench: Benchmark = {
  name: 'backfill.rows_per_s',
  run: () =>
    withResources('backfill', async (dir, defer) => {
      const backend = await startBackend(
        dir,
        defer,
        { kind: 'seed', organizations: ORGS, invitationsPerOrganization: PER_ORG },
        { limits: { rateLimit: LIMIT, rateWindowMs: WINDOW_MS, latencyMs: LATENCY_MS }, omitInvitations: true },
      );
      const redis = new Redis(backend.redisUrl, { maxRetriesPerRequest: null });
      defer(() => redis.quit().then(() => {}));
      const keys = mirrorKeys();
      const summary = await runBackfill({
        state: new SharedState(redis, keys),
        publisher: new StatePublisher({ connection: redis, keys, retentionMs: 3_600_000 }),
        bapi: new BapiClient({ apiUrl: backend.simUrl, secretKey: backend.secretKey, timeoutMs: 60_000 }),
        limiter: new SharedRateLimiter({ connection: redis, keys, rateLimit: { max: LIMIT, windowMs: WINDOW_MS } }),
        log: createLogger({ level: 'warn' }),
        pageSize: PAGE,
        concurrency: CONCURRENCY,
      });
      if (summary.status !== 'completed') throw new Error(`backfill ${summary.status}: ${summary.error ?? ''}`);
      const rows = summary.rows.inserted + summary.rows.updated + summary.rows.unchanged;
      const value = Math.round(rows / (summary.durationMs / 1000));
      const baseline = Math.round((LIMIT * PAGE) / (WINDOW_MS / 1000));
      const st = await backend.simStats();
      return [
        {
          name: 'backfill.rows_per_s',
          value,
          unit: 'rows/s',
          baseline,
          ratio: ratio(value, baseline),
          target: 'ratio >= 0.85',
          extra: {
            rows,
            pages: summary.pages,
            requests: summary.requests,
            refused429: st.rateLimited,
            durationS: Math.round(summary.durationMs / 100) / 10,
            concurrency: CONCURRENCY,
          },
        },
      ];
    }),
};
