import { Writable } from 'node:stream';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Webhook } from 'svix';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { SYNC_QUEUE } from '../../src/queue/names.ts';
import { startService, type Role, type Service } from '../../src/service.ts';
import { BapiClient } from '../../src/bapi/client.ts';
import { runBackfill, type BackfillSummary } from '../../src/maintenance/backfill.ts';
import { SharedRateLimiter } from '../../src/bapi/rate-limiter.ts';
import { runReconcile, type ReconcileReport } from '../../src/maintenance/reconcile.ts';
import type { MirrorKeys } from '../../src/state/keys.ts';
import { StatePublisher } from '../../src/state/publisher.ts';
import { SharedState } from '../../src/state/shared-state.ts';
import { startSimulator, type Simulator, type SimulatorOptions } from '../../src/simulator/index.ts';
import { redisSpace, type RedisSpace } from './state.ts';

export const SECRET_KEY = 'sk_test_pipelineTestKey0123456789';
export const SIGNING_SECRET = `whsec_${Buffer.alloc(32, 11).toString('base64')}`;

export interface Harness {
  sim: Simulator;
  service: Service;
  queue: Queue;
  /** The harness's Redis: the run's, under a key prefix of its own (cleared by `stop`). */
  redis: RedisSpace;
  keys: MirrorKeys;
  logs: () => string;
  /** Runs a backfill, or a reconciliation, against the harness's Clerk and shared state, in this process. */
  backfill(): Promise<BackfillSummary>;
  reconcile(o?: { dryRun?: boolean }): Promise<ReconcileReport>;
  webhookUrl: string;
  stop(): Promise<void>;
}

export async function startHarness(opts: {
  /** Names the harness's key prefix and mirror file (the test file's name, say). */
  name: string;
  dir: string;
  sim?: Partial<SimulatorOptions>;
  env?: Record<string, string>;
  roles?: Role[];
  coalesceMs?: number;
  /** Run the scheduled reconciliation (it starts with a full pass on a fresh mirror). @defaultValue false */
  reconcile?: boolean;
}): Promise<Harness> {
  const space = redisSpace(opts.name);
  const { keys } = space;
  const sim = await startSimulator({ secretKey: SECRET_KEY, signingSecret: SIGNING_SECRET, rateLimit: 0, ...opts.sim });
  const lines: string[] = [];
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk, _e, cb) {
        lines.push(String(chunk));
        cb();
      },
    }),
  });
  const config = loadConfig({
    CLERK_SECRET_KEY: SECRET_KEY,
    CLERK_WEBHOOK_SIGNING_SECRET: SIGNING_SECRET,
    CLERK_API_URL: sim.url,
    ...space.env,
    MIRROR_DB_PATH: join(opts.dir, `mirror-${keys.prefix}.db`),
    PORT: '0',
    BAPI_TIMEOUT_MS: '2000',
    ...opts.env,
  });
  const service = await startService({ config, log, roles: opts.roles, coalesceMs: opts.coalesceMs ?? 50, reconcile: opts.reconcile ?? false, shutdownTimeoutMs: 3000 });
  const webhookUrl = `${service.url}/webhooks/clerk`;
  sim.delivery.addEndpoint(webhookUrl);
  const connection = new Redis(space.url, { maxRetriesPerRequest: null });
  const queue = new Queue(SYNC_QUEUE, { connection, prefix: keys.queuePrefix });
  const maintenanceDeps = () => ({
    state: new SharedState(connection, keys),
    publisher: new StatePublisher({ connection, keys, retentionMs: config.state.retentionMs }),
    bapi: new BapiClient({ apiUrl: sim.url, secretKey: SECRET_KEY, timeoutMs: 5000 }),
    limiter: new SharedRateLimiter({ connection, keys, rateLimit: { max: 100_000, windowMs: 10_000 } }),
    log,
  });
  return {
    sim,
    service,
    queue,
    redis: space,
    keys,
    webhookUrl,
    logs: () => lines.join(''),
    backfill: () => runBackfill(maintenanceDeps()),
    reconcile: (o = {}) => runReconcile({ ...maintenanceDeps(), ...o }),
    async stop() {
      await service.stop();
      await queue.close();
      await connection.quit().catch(() => {});
      await sim.close();
      await space.clear();
    },
  };
}

/** Waits until every webhook is delivered, the queue has nothing left to do and the service's replica has applied every change. */
export async function settle(h: Harness, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let quietRounds = 0;
  while (Date.now() < deadline) {
    await h.sim.delivery.idle();
    const c = await h.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
    const busy = Object.values(c).reduce((a, b) => a + b, 0);
    const behind = h.service.replica ? (await h.service.replica.status()).entriesBehind : 0;
    quietRounds = busy === 0 && behind === 0 ? quietRounds + 1 : 0;
    if (quietRounds >= 3) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`pipeline did not settle within ${timeoutMs} ms: ${JSON.stringify(await h.queue.getJobCounts())}`);
}

/** Signs `payload` as Svix would for `secret`, `at` a given time. */
export function signed(payload: unknown, { secret = SIGNING_SECRET, at = new Date(), id = `msg_${Math.random().toString(36).slice(2)}` } = {}) {
  const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const signature = new Webhook(secret).sign(id, at, body);
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'svix-id': id,
      'svix-timestamp': String(Math.floor(at.getTime() / 1000)),
      'svix-signature': signature,
    } as Record<string, string>,
  };
}
