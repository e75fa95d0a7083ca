// ingest.webhooks_per_s: signed organizationInvitation.created webhooks the real receiver
// (verify + durable enqueue into a private redis-server with AOF everysec) accepts per second
// on loopback, against a bare Fastify route that answers 200 without doing either. The server
// runs in this process, autocannon in a child process (bench/load-client.ts).
import { loadavg } from 'node:os';
import Fastify from 'fastify';
import { round, runLoadClient, selfCpuUs, startBackend, startBenchService, webhookUrlOf, withResources } from './harness.ts';
import type { AutocannonOutput } from './load-client.ts';
import { ratio, type Benchmark } from './result.ts';

const CONNECTIONS = 50;
/** bench/raw-load.ts; `autocannon` gives the older figures (its own CPU cost is ~150 µs per webhook). */
const LOAD_CLIENT = (process.env.INGEST_CLIENT === 'autocannon' ? 'autocannon' : 'raw') as 'raw' | 'autocannon';
const WARMUP_S = 2;
const DURATION_S = 10;
/** Distinct invitations pre-signed for the receiver run: more than it can send, so none repeats. */
const RECEIVER_POOL = 150_000;
const BASELINE_POOL = 20_000;

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
      const bare = Fastify({ logger: false });
      defer(() => bare.close());
      bare.removeAllContentTypeParsers();
      bare.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: 256 * 1024 }, (_req, body, done) => done(null, body));
      bare.post('/webhooks/clerk', async (_req, reply) => reply.code(200).send({ ok: true }));
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
