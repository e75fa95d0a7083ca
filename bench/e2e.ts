// The pipeline end to end: e2e.events_per_s (how fast a worker drains a backlog of distinct
// invitations into the shared state) and e2e.lag_ms (how long an accepted webhook takes to
// show up in a replica's file under a steady 500 events/s). The service runs in this process;
// the simulator (standing in for Clerk) and the webhook sender each run in a child process.
// Next to the baseline (an empty processor), a floor: a BullMQ worker that only fetches and publishes.
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { BapiClient } from '../src/bapi/client.ts';
import type { InvitationJobData, SyncJobData } from '../src/queue/job.ts';
import { syncJobOptions } from '../src/queue/sync-queue.ts';
import { SYNC_JOB_NAME, SYNC_QUEUE } from '../src/queue/names.ts';
import { mirrorKeys } from '../src/state/keys.ts';
import { StatePublisher, type InvitationState, type PublishOutcome } from '../src/state/publisher.ts';
import { TurnBatcher } from '../src/state/turn-batcher.ts';
import { round, runLoadClient, selfCpuUs, startBackend, startBenchService, webhookUrlOf, withResources } from './harness.ts';
import type { SendOutput } from './load-client.ts';
import { ratio, type Benchmark, type BenchResult } from './result.ts';

/** Worker concurrency for both benchmarks (the service's default is 8; see BENCHMARKS.md). */
const CONCURRENCY = Number(process.env.BENCH_E2E_CONCURRENCY ?? 16);
const ORGS = 100;
const PER_ORG = 100;
const N = ORGS * PER_ORG;
/** The service's default coalescing window (SyncQueue's coalesceMs): what a burst for one invitation waits. */
const COALESCE_MS = 200;

/**
 * What SyncQueue.enqueue adds (its default attempts) for the first event of an invitation
 * (no delay: the leading edge), so the baseline's jobs cost BullMQ what ours do.
 */
const jobOptions = (d: SyncJobData) => syncJobOptions(d, { delayMs: 0, attempts: 12 });
const KEYS = mirrorKeys();
const QUEUE_PREFIX = KEYS.queuePrefix;

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

export const e2eEventsBench: Benchmark = {
  name: 'e2e.events_per_s',
  async run() {
    return withResources('e2e-events', async (dir, defer) => {
      const backend = await startBackend(dir, defer, { kind: 'seed', organizations: ORGS, invitationsPerOrganization: PER_ORG });
      const data = backend.invitations;
      if (data.length !== N) throw new Error(`simulator seeded ${data.length} invitations, expected ${N}`);
      const redis = new Redis(backend.redisUrl, { maxRetriesPerRequest: null });
      defer(() => void redis.quit().catch(() => redis.disconnect()));

      // Baseline: the same N jobs (same options as SyncQueue gives them) on a queue of their
      // own, drained by a bare BullMQ Worker with an empty processor at the same concurrency.
      const addJobs = async (queue: Queue) => {
        for (let i = 0; i < N; i += 1000) {
          await Promise.all(
            data.slice(i, i + 1000).map((inv) => {
              const d: SyncJobData = { organizationId: String(inv.organization_id), invitationId: String(inv.id), receivedAt: Date.now(), reason: 'organizationInvitation.created' };
              return queue.add(SYNC_JOB_NAME, d, jobOptions(d));
            }),
          );
        }
      };
      const emptyQueue = new Queue('bench-empty', { connection: redis, prefix: QUEUE_PREFIX });
      defer(() => emptyQueue.close());
      await addJobs(emptyQueue);
      await sleep(COALESCE_MS + 100);
      // BullMQ never closes a connection it was handed: this one is quit by `defer`.
      const workerConnection = new Redis(backend.redisUrl, { maxRetriesPerRequest: null });
      defer(() => void workerConnection.quit().catch(() => workerConnection.disconnect()));
      let emptyDone = 0;
      let cpu0 = selfCpuUs();
      let redis0 = backend.redisCpuUs();
      const t0 = performance.now();
      const emptyWorker = new Worker('bench-empty', async () => {}, { connection: workerConnection, prefix: QUEUE_PREFIX, concurrency: CONCURRENCY });
      defer(() => emptyWorker.close(true));
      emptyWorker.on('completed', () => emptyDone++);
      await waitFor(() => emptyDone >= N, 300_000, 'the empty worker');
      const baselineS = (performance.now() - t0) / 1000;
      const baseNodeCpu = (selfCpuUs() - cpu0) / N;
      const baseRedisCpu = (backend.redisCpuUs() - redis0) / N;
      await emptyWorker.close();

      // Floor: the least any worker on BullMQ does per invitation, the BAPI GET (our client)
      // and the publish (our script, batched per turn), on the same N jobs, into a state of
      // its own. What this machine allows a worker built on BullMQ while the simulator
      // answering it shares the two cores.
      const floorQueue = new Queue('bench-floor', { connection: redis, prefix: QUEUE_PREFIX });
      defer(() => floorQueue.close());
      await addJobs(floorQueue);
      await sleep(COALESCE_MS + 100);
      const floorState = new StatePublisher({ connection: redis, keys: mirrorKeys('bench-floor'), retentionMs: 3_600_000 });
      const floorPublisher = new TurnBatcher<InvitationState, PublishOutcome>(async (states) => (await floorState.publish(states)).outcomes);
      const bapi = new BapiClient({ apiUrl: backend.simUrl, secretKey: backend.secretKey });
      let floorDone = 0;
      const t2 = performance.now();
      const floorWorker = new Worker<InvitationJobData>(
        'bench-floor',
        async ({ data }) => {
          const got = await bapi.getOrganizationInvitation(data.organizationId, data.invitationId);
          await floorPublisher.call({ kind: 'present', invitation: got.invitation, raw: got.raw, observedAt: got.receivedAt, source: 'webhook' });
        },
        { connection: workerConnection, prefix: QUEUE_PREFIX, concurrency: CONCURRENCY },
      );
      defer(() => floorWorker.close(true));
      floorWorker.on('completed', () => floorDone++);
      await waitFor(() => floorDone >= N, 300_000, 'the floor worker');
      const floorS = (performance.now() - t2) / 1000;
      await floorWorker.close();

      // Ours: N signed webhooks through the receiver (a backlog of N jobs), then a worker-only
      // service timed from its start until the N-th job has published its state.
      const receiver = await startBenchService(backend, defer, { roles: ['receiver'] });
      const sent = await runLoadClient<SendOutput>(
        { mode: 'send', url: webhookUrlOf(receiver), secret: backend.signingSecret, events: { kind: 'given', data }, concurrency: 50 },
        300_000,
      );
      await receiver.stop();
      if (sent.ok !== N) throw new Error(`receiver accepted ${sent.ok} of ${N} webhooks (${sent.non2xx} non-2xx, ${sent.errors} errors)`);
      const syncQueue = new Queue(SYNC_QUEUE, { connection: redis, prefix: QUEUE_PREFIX });
      defer(() => syncQueue.close());
      const counts = await syncQueue.getJobCounts('waiting', 'delayed', 'prioritized');
      const backlog = Object.values(counts).reduce((a, b) => a + b, 0);
      if (backlog !== N) throw new Error(`expected a backlog of ${N} jobs, found ${JSON.stringify(counts)}`);
      await sleep(COALESCE_MS + 100);

      const simRequests0 = await backend.simRequests();
      const sim0 = backend.simCpuUs();
      cpu0 = selfCpuUs();
      redis0 = backend.redisCpuUs();
      const t1 = performance.now();
      const worker = await startBenchService(backend, defer, { roles: ['worker'], concurrency: CONCURRENCY });
      await waitFor(() => worker.stats.jobs.completed + worker.stats.jobs.failed >= N, 600_000, 'the sync worker');
      const oursS = (performance.now() - t1) / 1000;
      const nodeCpu = (selfCpuUs() - cpu0) / N;
      const redisCpu = (backend.redisCpuUs() - redis0) / N;
      const simCpu = (backend.simCpuUs() - sim0) / N;
      const rows = await redis.hlen(KEYS.snapshot);
      const stats = worker.stats;
      await worker.stop();
      if (rows !== N) throw new Error(`shared state has ${rows} invitations, expected ${N}`);

      const value = N / oursS;
      const baseline = N / baselineS;
      return [
        {
          name: 'e2e.events_per_s',
          value: Math.round(value),
          unit: 'invitations synced/s',
          baseline: Math.round(baseline),
          ratio: ratio(value, baseline),
          target: 'ratio >= 0.5',
          extra: {
            invitations: N,
            concurrency: CONCURRENCY,
            seconds: round(oursS, 2),
            baseline_seconds: round(baselineS, 2),
            floor_per_s: Math.round(N / floorS),
            floor_ratio: ratio(N / floorS, baseline),
            worker_cpu_us_per_job: round(nodeCpu, 0),
            redis_cpu_us_per_job: round(redisCpu, 0),
            sim_cpu_us_per_job: round(simCpu, 0),
            baseline_worker_cpu_us_per_job: round(baseNodeCpu, 0),
            baseline_redis_cpu_us_per_job: round(baseRedisCpu, 0),
            enqueue_webhooks_per_s: Math.round(sent.achievedRate),
            bapi_calls: (await backend.simRequests()) - simRequests0,
            failed: stats.jobs.failed,
            retried: stats.jobs.retried,
            loadavg_1m: round(loadavg()[0]!, 2),
          },
        },
      ];
    });
  },
};

/** Events 50 ms apart: each one alone, the lag a sign-up flow sees. */
const QUIET_RATE = 20;
const QUIET_SECONDS = 10;
const LAG_RATE = 500;
const LAG_WARMUP_S = 1;
const LAG_SECONDS = 10;
/** A first, lighter pass: the lag of the pipeline itself, when the service is not saturated. */
const LIGHT_RATE = 100;
const LIGHT_SECONDS = 10;

export const e2eLagBench: Benchmark = {
  name: 'e2e.lag_ms',
  reports: ['e2e.lag_quiet_ms'],
  async run() {
    return withResources('e2e-lag', async (dir, defer) => {
      const total = LAG_RATE * (LAG_WARMUP_S + LAG_SECONDS);
      const light = LIGHT_RATE * LIGHT_SECONDS;
      const quiet = QUIET_RATE * QUIET_SECONDS;
      // Created up front in the simulator; each one's webhook is then posted at a steady pace.
      // Spread over enough organizations that none sees a burst: an organization's batch would
      // list invitations created up front before their webhooks are even sent, which is
      // nothing Clerk can do, and the lag would read 0 (burst.bulk_calls measures batches).
      const backend = await startBackend(dir, defer, { kind: 'create', organizations: 1000, invitations: quiet + light + total });
      // coalesceMs not passed: SyncQueue's default (200 ms) applies, as in production.
      const service = await startBenchService(backend, defer, { roles: ['receiver', 'worker', 'replica'], concurrency: CONCURRENCY });
      const pass = (data: Record<string, unknown>[], ratePerS: number, skipFirst: number, intervalMs = 5) =>
        runLoadClient<SendOutput>(
          {
            mode: 'send',
            url: webhookUrlOf(service),
            secret: backend.signingSecret,
            events: { kind: 'given', data },
            concurrency: 64,
            ratePerS,
            poll: { dbPath: backend.dbPath, intervalMs, timeoutMs: 60_000, skipFirst },
          },
          180_000,
        );
      // How long the service's event loop stalls (it also runs the replica's synchronous SQLite writes).
      const loopDelay = monitorEventLoopDelay({ resolution: 5 });
      loopDelay.enable();
      // Polled every millisecond: at this pace the poll's own step would be most of the figure.
      const quietOut = await pass(backend.invitations.slice(0, quiet), QUIET_RATE, QUIET_RATE, 1);
      loopDelay.reset();
      const lightOut = await pass(backend.invitations.slice(quiet, quiet + light), LIGHT_RATE, LIGHT_RATE);
      const lightLoop = { p50: loopDelay.percentile(50) / 1e6, p99: loopDelay.percentile(99) / 1e6 };
      const lightStats = { p50: service.stats.lagPercentile(50) ?? NaN, p99: service.stats.lagPercentile(99) ?? NaN };
      loopDelay.reset();
      const completedBefore = service.stats.jobs.completed;
      const cpu0 = selfCpuUs();
      const t0 = performance.now();
      const out = await pass(backend.invitations.slice(quiet + light), LAG_RATE, LAG_RATE * LAG_WARMUP_S);
      // Includes the load client's start-up (pre-signing) and the tail wait, so a lower bound.
      const serviceBusy = (selfCpuUs() - cpu0) / 1000 / (performance.now() - t0);
      loopDelay.disable();
      const mainLoop = { p50: loopDelay.percentile(50) / 1e6, p99: loopDelay.percentile(99) / 1e6 };
      // stats.lag: receivedAt (before verification) → state published, in the service's own clock.
      // It cannot be reset, so after the second pass it covers both passes.
      const inProcess = { p50: service.stats.lagPercentile(50) ?? NaN, p99: service.stats.lagPercentile(99) ?? NaN };
      const completed = service.stats.jobs.completed - completedBefore;
      await service.stop();
      const lag = out.lag!;
      const lightLag = lightOut.lag!;
      const quietLag = quietOut.lag!;
      if (out.ok !== total || lag.missing > 0 || lightOut.ok !== light || lightLag.missing > 0 || quietOut.ok !== quiet || quietLag.missing > 0) {
        throw new Error(`lag run incomplete: ${out.ok}/${total}, ${lightOut.ok}/${light} and ${quietOut.ok}/${quiet} accepted, ${lag.missing + lightLag.missing + quietLag.missing} rows never seen`);
      }
      return [
        <BenchResult>{
          name: 'e2e.lag_quiet_ms',
          value: quietLag.p50,
          unit: 'ms 2xx→row visible (p50)',
          baseline: null,
          ratio: null,
          target: 'p50 <= 10 ms, p99 <= 30 ms, events 50 ms apart, simulator without latency',
          extra: { p90_ms: quietLag.p90, p99_ms: quietLag.p99, max_ms: quietLag.max, samples: quietLag.samples, rate_per_s: quietOut.achievedRate, accept_p99_ms: quietOut.acceptP99Ms, poll_ms: 1 },
        },
        {
          name: 'e2e.lag_ms',
          value: lag.p50,
          unit: 'ms 2xx→row visible (p50)',
          baseline: null,
          ratio: null,
          target: 'report p50/p99 at 500/s',
          extra: {
            p90_ms: lag.p90,
            p99_ms: lag.p99,
            max_ms: lag.max,
            samples: lag.samples,
            rate_per_s: out.achievedRate,
            accept_p99_ms: out.acceptP99Ms,
            non2xx: out.non2xx + out.errors + lightOut.non2xx + lightOut.errors,
            coalesce_ms: COALESCE_MS,
            concurrency: CONCURRENCY,
            at100_p50_ms: lightLag.p50,
            at100_p99_ms: lightLag.p99,
            at100_accept_p99_ms: lightOut.acceptP99Ms,
            at100_loop_delay_p99_ms: round(lightLoop.p99, 1),
            loop_delay_p50_ms: round(mainLoop.p50, 1),
            loop_delay_p99_ms: round(mainLoop.p99, 1),
            at100_stats_lag_p50_ms: lightStats.p50,
            at100_stats_lag_p99_ms: lightStats.p99,
            stats_lag_both_passes_p50_ms: inProcess.p50,
            stats_lag_both_passes_p99_ms: inProcess.p99,
            service_cpu_share: round(serviceBusy, 2),
            jobs_completed: completed,
            loadavg_1m: round(loadavg()[0]!, 2),
          },
        },
      ];
    });
  },
};
