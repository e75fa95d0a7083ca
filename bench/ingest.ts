// ingest.webhooks_per_s: signed organizationInvitation.created webhooks the real receiver
// (verify + durable enqueue into a private redis-server with the managed server's AOF policy, bench/harness.ts) accepts per second
// on loopback, against a bare Fastify route that answers 200 without doing either. The server
// runs in this process, the load generator in a child process (bench/load-client.ts).
//
// A third server, the floor, does only what the issue requires of any receiver (svix verify,
// JSON.parse, one BullMQ add with our job options, writes coalesced as ours are): what this
// machine allows a receiver built on svix and BullMQ, measured in the same run as ours.
import { loadavg } from 'node:os';
import { Queue } from 'bullmq';
import Fastify, { type FastifyInstance } from 'fastify';
import { Webhook } from 'svix';
import { QUEUE_PREFIX, SYNC_JOB_NAME } from '../src/queue/names.ts';
import { syncJobOptions } from '../src/queue/sync-queue.ts';
import { WriteCoalescer } from '../src/redis/coalesce-writes.ts';
import { connectRedis } from '../src/redis/connection.ts';
import { round, runLoadClient, selfCpuUs, startBackend, startBenchService, webhookUrlOf, withResources } from './harness.ts';
import type { AutocannonOutput } from './load-client.ts';
import { ratio, type Benchmark } from './result.ts';

const CONNECTIONS = 50;
/** bench/raw-load.ts; `autocannon` gives the older figures (it costs the server's machine more CPU per webhook: raw-load.ts). */
const LOAD_CLIENT = (process.env.INGEST_CLIENT === 'autocannon' ? 'autocannon' : 'raw') as 'raw' | 'autocannon';
const WARMUP_S = 2;
const DURATION_S = 10;
/** Distinct invitations pre-signed for the receiver run: more than it can send, so none repeats. */
const RECEIVER_POOL = 150_000;
const BASELINE_POOL = 20_000;

/** A Fastify app with the receiver's raw-body parser and `handler` on the webhook path. */
function rawBodyApp(handler: (body: Buffer, headers: Record<string, string>) => Promise<void> | void): FastifyInstance {
  const app = Fastify({ logger: false });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: 256 * 1024 }, (_req, body, done) => done(null, body));
  app.post('/webhooks/clerk', async (req, reply) => {
    await handler(req.body as Buffer, req.headers as Record<string, string>);
    return reply.code(200).send({ ok: true });
  });
  return app;
}

/** The least a receiver on svix and BullMQ does: verify, parse, one add (SyncQueue's options). */
function floorApp(redisUrl: string, signingSecret: string, defer: (close: () => Promise<void> | void) => void): FastifyInstance {
  const connection = connectRedis(redisUrl, { failFast: true });
  defer(() => void connection.quit().catch(() => connection.disconnect()));
  const queue = new Queue('bench-floor', { connection, prefix: QUEUE_PREFIX });
  defer(() => queue.close());
  const writes = new WriteCoalescer(connection);
  const webhook = new Webhook(signingSecret);
  return rawBodyApp(async (body, headers) => {
    webhook.verify(body, headers);
    const { type, data } = JSON.parse(body.toString('utf8')) as { type: string; data: { id: string; organization_id: string; updated_at: number } };
    writes.hold();
    const job = { organizationId: data.organization_id, invitationId: data.id, eventUpdatedAt: data.updated_at, receivedAt: Date.now(), reason: type };
    await queue.add(SYNC_JOB_NAME, job, syncJobOptions(job, { delayMs: 200, attempts: 12 }));
  });
}

export const ingestBench: Benchmark = {
  name: 'ingest.webhooks_per_s',
  async run() {
    return withResources('ingest', async (dir, defer) => {
      const backend = await startBackend(dir, defer);
      const load = (url: string, events: Parameters<typeof runLoadClient>[0]['events'], durationS = DURATION_S) =>
        runLoadClient<AutocannonOutput>(
          { mode: LOAD_CLIENT, url, secret: backend.signingSecret, events, connections: CONNECTIONS, warmupS: WARMUP_S, durationS },
          (WARMUP_S + durationS) * 1000 + 120_000,
        );

      // Baseline: same route and raw-body parser, no verification, no Redis.
      const bare = rawBodyApp(() => {});
      defer(() => bare.close());
      const bareUrl = `${await bare.listen({ port: 0, host: '127.0.0.1' })}/webhooks/clerk`;
      let cpu0 = selfCpuUs();
      const base = await load(bareUrl, { kind: 'synthetic', count: BASELINE_POOL, organizations: 100, salt: 'b' });
      const baseServerCpu = (selfCpuUs() - cpu0) / base.sent;
      await bare.close();

      const service = await startBenchService(backend, defer, { roles: ['receiver'] });
      cpu0 = selfCpuUs();
      const redis0 = backend.redisCpuUs();
      const ours = await load(webhookUrlOf(service), { kind: 'synthetic', count: RECEIVER_POOL, organizations: 100, salt: 'r' });
      // CPU per request over warm-up and run (this process is otherwise idle meanwhile).
      const serverCpu = (selfCpuUs() - cpu0) / ours.sent;
      const redisCpu = (backend.redisCpuUs() - redis0) / ours.sent;
      const floor = floorApp(backend.redisUrl, backend.signingSecret, defer);
      defer(() => floor.close());
      const floorRun = await load(`${await floor.listen({ port: 0, host: '127.0.0.1' })}/webhooks/clerk`, { kind: 'synthetic', count: RECEIVER_POOL, organizations: 100, salt: 'f' });
      await floor.close();
      // The same load over only 100 invitations: each event then replaces the waiting job of
      // its invitation (deduplication with replace) instead of adding one.
      const dedup = await load(webhookUrlOf(service), { kind: 'repeated', count: 10_000, distinct: 100, salt: 'd' }, 5);
      const accepted = service.stats.webhooksWith('accepted');
      const unavailable = service.stats.webhooksWith('unavailable');
      await service.stop();

      return [
        {
          name: 'ingest.webhooks_per_s',
          value: Math.round(ours.rate),
          unit: 'webhooks/s (2xx)',
          baseline: Math.round(base.rate),
          ratio: ratio(ours.rate, base.rate),
          target: '>= 3000/s and p99 <= 25 ms',
          extra: {
            p99_ms: ours.latencyP99Ms,
            p50_ms: ours.latencyP50Ms,
            baseline_p99_ms: base.latencyP99Ms,
            non2xx: ours.non2xx + ours.errors + ours.timeouts,
            baseline_non2xx: base.non2xx + base.errors + base.timeouts,
            connections: CONNECTIONS,
            client: LOAD_CLIENT,
            duration_s: ours.durationS,
            pool_use: ours.poolUse,
            accepted_total: accepted,
            unavailable_503: unavailable,
            server_cpu_us_per_req: round(serverCpu, 0),
            redis_cpu_us_per_req: round(redisCpu, 0),
            client_cpu_us_per_req: round(ours.clientCpuUsPerReq, 0),
            baseline_server_cpu_us_per_req: round(baseServerCpu, 0),
            baseline_client_cpu_us_per_req: round(base.clientCpuUsPerReq, 0),
            floor_per_s: Math.round(floorRun.rate),
            floor_p99_ms: floorRun.latencyP99Ms,
            floor_non2xx: floorRun.non2xx + floorRun.errors + floorRun.timeouts,
            dedup100_per_s: Math.round(dedup.rate),
            dedup100_p99_ms: dedup.latencyP99Ms,
            dedup100_non2xx: dedup.non2xx + dedup.errors + dedup.timeouts,
            loadavg_1m: round(loadavg()[0]!, 2),
          },
        },
      ];
    });
  },
};
