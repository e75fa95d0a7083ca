import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Webhook } from 'svix';
import { MirrorReader } from '../src/mirror/reader.ts';
import { SYNC_QUEUE } from '../src/queue/names.ts';
import { mirrorKeys } from '../src/state/keys.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { startService, type Service } from '../src/service.ts';
import { startSimulator, type Simulator } from '../src/simulator/index.ts';
import { seededRandom } from '../src/simulator/random.ts';
import { round, withResources } from './harness.ts';
import type { Benchmark } from './result.ts';

/**
 * BAPI calls per invitation change over the demo's mix (Svix duplicates and reorders,
 * creates, accepts and revokes across organizations), plus what the demo does not have:
 * bursts of copies of one event and a bulk invite in one organization. The lower bound a
 * mirror fetching each change on its own would reach is one call per distinct change.
 */
export const budgetBench: Benchmark = {
  name: 'budget.calls_per_change',
  async run() {
    return withResources('budget', async (dir, defer) => {
      const secretKey = `sk_test_bench${randomBytes(12).toString('hex')}`;
      const signingSecret = `whsec_${randomBytes(32).toString('base64')}`;
      const sim = await startSimulator({ secretKey, signingSecret, rateLimit: 0, seed: 7, delivery: { duplicateRate: 0.15, reorderRate: 0.25, reorderWindowMs: 150, otherEventRate: 0.1 } });
      defer(() => sim.close());
      const store = sim.store;
      const { organizationIds, invitationIds } = store.seed({ organizations: 10, invitationsPerOrganization: 20 });
      const config = loadConfig({ CLERK_SECRET_KEY: secretKey, CLERK_WEBHOOK_SIGNING_SECRET: signingSecret, CLERK_API_URL: sim.url, MIRROR_DB_PATH: `${dir}/mirror.db`, PORT: '0', LOG_LEVEL: 'silent', BAPI_RATE_LIMIT: '1000000' });
      // No maintenance: a backfill would copy the seeded invitations behind the webhooks' back.
      const service = await startService({ config, log: createLogger({ level: 'silent' }), reconcile: false, shutdownTimeoutMs: 5000 });
      defer(() => service.stop());
      const webhookUrl = `${service.url}/webhooks/clerk`;
      sim.delivery.addEndpoint(webhookUrl);

      const random = seededRandom(7);
      const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)]!;
      const touched: string[] = [];
      const actions: (() => Promise<void> | void)[] = [];
      // The demo's mix.
      for (let i = 0; i < 200; i++) actions.push(() => void touched.push(store.createInvitation(pick(organizationIds), { emailAddress: `mix${i}@example.com` }).id));
      for (const id of invitationIds.filter((x) => store.getInvitation(x)?.status === 'pending').slice(0, 50)) {
        actions.push(() => void (random() < 0.6 ? store.acceptInvitation(id) : store.revokeInvitation(id)));
      }
      for (let i = 0; i < 60; i++) {
        actions.push(() => {
          const id = pick(touched);
          if (store.getInvitation(id)?.status !== 'pending') return;
          if (random() < 0.5) store.acceptInvitation(id);
          else store.revokeInvitation(id);
        });
      }
      // Bursts: twenty copies of one event, for five invitations (a sender retrying, several endpoints).
      for (let b = 0; b < 5; b++) {
        actions.push(async () => {
          const inv = store.createInvitation(pick(organizationIds), { emailAddress: `burst${b}@example.com` });
          const body = JSON.stringify({ data: inv, object: 'event', type: 'organizationInvitation.created', timestamp: Date.now() });
          await Promise.all(
            Array.from({ length: 20 }, (_, k) => {
              const id = `msg_burst${b}_${k}`;
              const at = new Date();
              const headers = { 'content-type': 'application/json', 'svix-id': id, 'svix-timestamp': String(Math.floor(at.getTime() / 1000)), 'svix-signature': new Webhook(signingSecret).sign(id, at, body) };
              return fetch(webhookUrl, { method: 'POST', headers, body }).then((r) => r.arrayBuffer());
            }),
          );
        });
      }
      // A bulk invite: 300 new invitations of one organization at once.
      const bulkOrg = store.createOrganization({ name: 'Bulk' }).id;
      actions.push(() => {
        for (let i = 0; i < 300; i++) store.createInvitation(bulkOrg, { emailAddress: `bulk${i}@example.com` });
      });

      const versions0 = new Map(store.truth().map((i) => [i.id, i.updated_at]));
      sim.resetStats();
      // Spread over about two seconds, in the order drawn, as the demo does.
      const order = actions.map((a) => ({ a, k: random() })).sort((x, y) => x.k - y.k);
      const step = Math.max(1, Math.ceil(order.length / 20));
      for (let i = 0; i < order.length; i += step) {
        await Promise.all(order.slice(i, i + step).map((o) => o.a()));
        await sleep(100);
      }
      const redis = new Redis(service.redisUrl!, { maxRetriesPerRequest: null });
      defer(() => void redis.quit().catch(() => redis.disconnect()));
      const queue = new Queue(SYNC_QUEUE, { connection: redis, prefix: mirrorKeys().queuePrefix });
      defer(() => queue.close());
      await settle(sim, service, queue);
      // A figure of a mirror that is wrong would mean nothing: every invitation as Clerk has it.
      const reader = new MirrorReader(service.mirror!);
      // Distinct changes: every invitation whose state is new or moved since before the run.
      const changed = store.truth().filter((inv) => versions0.get(inv.id) !== inv.updated_at);
      const wrong = changed.filter((inv) => reader.findRaw(inv.organization_id, inv.id) !== JSON.stringify(inv));
      if (wrong.length) throw new Error(`${wrong.length} changed invitations differ from the simulator's truth`);
      const changes = changed.length;
      const calls = sim.stats().requests;
      // Svix's deliveries (duplicates included) and the bursts' copies posted here.
      const events = sim.delivery.stats().sent + 5 * 20;
      return [
        {
          name: 'budget.calls_per_change',
          value: round(calls / changes, 3),
          unit: 'BAPI calls per distinct invitation change',
          baseline: null,
          ratio: null,
          target: 'report, next to the distinct changes (1 call per change: each fetched on its own)',
          extra: { distinct_changes: changes, bapi_calls: calls, webhooks: events, batch_pages: service.stats.batches.pages, skipped_jobs: service.stats.jobs.skipped },
        },
      ];
    });
  },
};

/** Until every webhook is delivered, the queue is idle and the replica has applied everything. */
async function settle(sim: Simulator, service: Service, queue: Queue): Promise<void> {
  let quiet = 0;
  const deadline = Date.now() + 120_000;
  while (quiet < 5) {
    if (Date.now() > deadline) throw new Error('the mirror did not settle within 120 s');
    await sim.delivery.idle();
    const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    const behind = (await service.replica!.status()).entriesBehind ?? 0;
    quiet = Object.values(c).reduce((a, b) => a + b, 0) === 0 && behind === 0 ? quiet + 1 : 0;
    await sleep(100);
  }
}
