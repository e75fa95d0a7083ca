import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { isNull } from 'drizzle-orm';
import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { createMirror } from '../mirror/mirror.ts';
import { organizationInvitations } from '../mirror/schema.ts';
import { SYNC_QUEUE } from '../queue/names.ts';
import { createReplica, type ReplicaMirror } from '../replica/create.ts';
import { replicaReadiness } from '../replica/status.ts';
import { mirrorKeys } from '../state/keys.ts';
import { connectRedis } from '../redis/connection.ts';
import { startService, type Service } from '../service.ts';
import { randomBase62 } from '../simulator/ids.ts';
import { startSimulator, type Simulator } from '../simulator/index.ts';
import { seededRandom } from '../simulator/random.ts';
import { UsageError, type Command } from './command.ts';

export const demoCommand: Command = {
  summary: 'run the whole pipeline against a local Clerk simulator and check the result (npm run demo)',
  help: `Usage: clerk-invitation-mirror demo [--organizations N] [--invitations N] [--new N] [--keep]

Shows the mirror working with nothing configured and no Clerk account: starts the Clerk
simulator, a private redis-server and the mirror (receiver, worker, replica, read API), plus
a second replica in memory through the library (createReplica), as another host would run
it; seeds organizations and invitations; then creates, accepts and revokes invitations so
that the simulator sends Svix-signed webhooks, some of them duplicated and reordered. It ends
with a summary (events, jobs, BAPI calls per event, replica lag, lookups per second) and checks
that both replicas hold exactly the simulator's invitations, field for field; it exits 0 only
if they do.

Options:
  --organizations N  organizations to seed (default 10)
  --invitations N    invitations seeded per organization (default 20)
  --new N            invitations created through webhooks (default 200)
  --seed N           seed of the simulated data and delivery quirks (default 7)
  --keep             keep the working directory (mirror.db, Redis AOF) and print its path
  -h, --help         show this help`,
  async run(argv, env) {
    const { values } = parseArgs({
      args: argv,
      options: {
        organizations: { type: 'string', default: '10' },
        invitations: { type: 'string', default: '20' },
        new: { type: 'string', default: '200' },
        seed: { type: 'string', default: '7' },
        keep: { type: 'boolean', default: false },
      },
      strict: true,
    });
    const count = (name: keyof typeof values) => {
      const n = Number(values[name]);
      if (!Number.isInteger(n) || n < 0 || n > 100_000) throw new UsageError(`--${name} must be a whole number from 0 to 100000`);
      return n;
    };
    return runDemo({ organizations: Math.max(1, count('organizations')), perOrg: count('invitations'), created: count('new'), seed: count('seed'), keep: values.keep, redisUrl: env.REDIS_URL || undefined });
  },
};

interface DemoOptions {
  organizations: number;
  perOrg: number;
  created: number;
  seed: number;
  keep: boolean;
  redisUrl: string | undefined;
}

async function runDemo(o: DemoOptions): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'clerk-invitation-mirror-demo-'));
  const out = process.stdout;
  const say = (line: string) => out.write(`${line}\n`);
  // Test credentials of a simulator that lives for this command only.
  const secretKey = `sk_live_${randomBase62(32)}`;
  const signingSecret = `whsec_${randomBytes(24).toString('base64')}`;
  let sim: Simulator | undefined;
  let service: Service | undefined;
  let second: ReplicaMirror | undefined;
  try {
    say('clerk-invitation-mirror demo: a local Clerk simulator, a private Redis and the mirror, all on this machine');
    sim = await startSimulator({
      secretKey,
      signingSecret,
      seed: o.seed,
      delivery: { duplicateRate: 0.15, reorderRate: 0.25, reorderWindowMs: 150, otherEventRate: 0.1 },
    });
    const store = sim.store;
    const { organizationIds, invitationIds } = store.seed({ organizations: o.organizations, invitationsPerOrganization: o.perOrg });
    say(`  seeded ${organizationIds.length} organizations with ${invitationIds.length} invitations (Clerk sends no webhooks for existing data: the backfill the mirror queues at its first start copies them)`);
    const config = loadConfig({
      CLERK_SECRET_KEY: secretKey,
      CLERK_WEBHOOK_SIGNING_SECRET: signingSecret,
      CLERK_API_URL: sim.url,
      MIRROR_DB_PATH: join(dir, 'mirror.db'),
      REDIS_URL: o.redisUrl,
      PORT: '0',
      MIRROR_API_KEY: randomBase62(32),
    });
    const log = createLogger({ level: 'warn', destination: process.stderr });
    service = await startService({ config, log });
    sim.delivery.addEndpoint(`${service.url}/webhooks/clerk`);
    say(`  simulator ${sim.url} · mirror ${service.url} · redis ${service.redisUrl} · database ${config.mirrorDbPath}`);
    second = await createReplica({ redisUrl: service.redisUrl!, path: ':memory:', logger: log });
    say('  a second replica follows the same shared state in memory, through the library (createReplica)');


    const random = seededRandom(o.seed);
    const touched = new Set<string>();
    const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)]!;
    const actions: (() => void)[] = [];
    for (let i = 0; i < o.created; i++) {
      actions.push(() => touched.add(store.createInvitation(pick(organizationIds), { emailAddress: `demo${i}@example.com` }).id));
    }
    const pendingSeeded = invitationIds.filter((id) => store.getInvitation(id)?.status === 'pending');
    for (const id of pendingSeeded.slice(0, Math.floor(pendingSeeded.length / 2))) {
      actions.push(() => {
        if (random() < 0.6) store.acceptInvitation(id);
        else store.revokeInvitation(id);
        touched.add(id);
      });
    }
    // Accept or revoke some of the new ones once they exist.
    for (let i = 0; i < Math.floor(o.created / 3); i++) {
      actions.push(() => {
        const id = pick([...touched]);
        if (store.getInvitation(id)?.status !== 'pending') return;
        if (random() < 0.5) store.acceptInvitation(id);
        else store.revokeInvitation(id);
      });
    }

    const redis = connectRedis(service.redisUrl!);
    const queue = new Queue(SYNC_QUEUE, { connection: redis, prefix: mirrorKeys(config.keyPrefix).queuePrefix });
    const started = Date.now();
    const progress = createProgress(out);
    try {
      // Spread the changes over about two seconds, as a busy instance would produce them.
      const batch = Math.max(1, Math.ceil(actions.length / 20));
      for (let i = 0; i < actions.length; i += batch) {
        for (const act of actions.slice(i, i + batch)) act();
        progress(await snapshot(sim, service, queue), `changes ${Math.min(i + batch, actions.length)}/${actions.length}`);
        await sleep(100);
      }
      for (let quiet = 0; quiet < 3; ) {
        await sim.delivery.idle();
        const s = await snapshot(sim, service, queue);
        progress(s, 'settling');
        const ready = replicaReadiness(await service.replica!.status(), 0.5) === true && (await second.status()).entriesBehind === 0;
        quiet = s.depth === 0 && ready ? quiet + 1 : 0;
        if (Date.now() - started > 120_000) throw new Error('the pipeline did not settle within 2 minutes');
        await sleep(150);
      }
      progress.done();
    } finally {
      await queue.close();
      await redis.quit().catch(() => redis.disconnect());
    }
    const elapsed = (Date.now() - started) / 1000;

    // The check: each replica holds every invitation of the truth, equal field for field, and nothing else.
    const t = organizationInvitations;
    const rows = service.mirror!.db.select({ id: t.id, organizationId: t.organizationId, raw: t.raw }).from(t).where(isNull(t.deletedAt)).all();
    const truth = store.truth();
    const mismatches = differences(new Map(rows.map((r) => [r.id, JSON.parse(r.raw!) as unknown])), truth);
    const secondRows = new Map<string, unknown>();
    for (const org of new Set(truth.map((t) => t.organization_id))) {
      for (let offset = 0; ; offset += 500) {
        const page = await second.getOrganizationInvitationList({ organizationId: org, limit: 500, offset });
        for (const inv of page.data) secondRows.set(inv.id, inv.raw);
        if (offset + 500 >= page.totalCount) break;
      }
    }
    const secondMismatches = differences(secondRows, truth);

    const lookupsPerSecond = measureLookups(config.mirrorDbPath, rows.map((r) => ({ id: r.id, org: r.organizationId })));
    const st = service.stats;
    const acceptedOf = (typePrefix: string) => [...st.webhooks].reduce((n, [k, v]) => (k.startsWith(`accepted:${typePrefix}`) ? n + v : n), 0);
    // Organization, role and user events change invitations indirectly; they are not invitation events.
    const accepted = acceptedOf('organizationInvitation.');
    const indirect = st.webhooksWith('accepted') - accepted;
    const simStats = sim.stats();
    const calls = simStats.byRoute['GET /v1/organizations/:organization_id/invitations/:invitation_id'] ?? 0;
    const fmt = (n: number | undefined) => (n === undefined ? '-' : `${Math.round(n)} ms`);
    say('');
    say('Summary');
    say(
      `  webhooks delivered      ${simStats.delivery.delivered} (${simStats.delivery.duplicated} duplicated, ${st.webhooksWith('ignored')} of other Clerk event types acknowledged and ignored, ${indirect} organization, role or user events acted on)`,
    );
    say(`  invitation events       ${accepted} accepted, ${st.webhooksWith('rejected')} rejected, ${st.webhooksWith('unavailable')} answered 503`);
    say(`  sync jobs               ${st.jobs.completed} completed (${st.jobs.skipped} without a BAPI call: the shared state already held that version), ${st.jobs.retried} retried, ${st.jobs.failed} failed`);
    say(`  BAPI calls              ${calls} (${accepted ? (calls / accepted).toFixed(2) : '-'} per invitation event, ${simStats.rateLimited} answered 429)`);
    say(`  replica lag             p50 ${fmt(st.replicaLagPercentile(50))}, p99 ${fmt(st.replicaLagPercentile(99))} (event accepted → row in the replica's file; an invitation's repeated events wait out the coalescing window, an organization's burst its batch)`);
    say(`  local lookups           ${Math.round(lookupsPerSecond).toLocaleString('en-US')} per second (getOrganizationInvitation, one process)`);
    say(`  replicas                2 (the service's file, ${rows.length} invitations; the library's, in memory, ${secondRows.size}); ${touched.size} had events; ${elapsed.toFixed(1)} s from first change to settled`);
    if (mismatches.length || secondMismatches.length) {
      say(`CHECK FAILED: ${mismatches.length} invitation(s) differ from the simulator in the service's replica, ${secondMismatches.length} in the library's`);
      for (const id of [...mismatches, ...secondMismatches].slice(0, 10)) say(`  ${id}`);
      return 1;
    }
    say(`CHECK PASSED: both replicas hold exactly the simulator's ${truth.length} invitations, field for field`);
    return 0;
  } finally {
    await second?.close();
    await service?.stop();
    await sim?.close();
    if (o.keep) say(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

interface Snapshot {
  delivered: number;
  accepted: number;
  completed: number;
  depth: number;
}

async function snapshot(sim: Simulator, service: Service, queue: Queue): Promise<Snapshot> {
  const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
  return {
    delivered: sim.delivery.stats().delivered,
    accepted: service.stats.webhooksWith('accepted'),
    completed: service.stats.jobs.completed,
    depth: Object.values(counts).reduce((a, b) => a + b, 0),
  };
}

/** One line redrawn in place on a terminal; a plain line every few seconds otherwise. */
function createProgress(out: NodeJS.WriteStream) {
  let lastPlain = 0;
  const fn = (s: Snapshot, phase: string) => {
    const line = `  ${phase.padEnd(16)} webhooks ${s.delivered} · accepted ${s.accepted} · jobs done ${s.completed} · queued ${s.depth}`;
    if (out.isTTY) out.write(`\r${line.padEnd(out.columns ? out.columns - 1 : 100)}`);
    else if (Date.now() - lastPlain > 2000) {
      lastPlain = Date.now();
      out.write(`${line}\n`);
    }
  };
  fn.done = () => {
    if (out.isTTY) out.write('\n');
  };
  return fn;
}

/** Ids whose JSON is missing, different or extra compared with `truth`. */
function differences(held: Map<string, unknown>, truth: { id: string }[]): string[] {
  const out = truth.filter((t) => JSON.stringify(held.get(t.id)) !== JSON.stringify(t)).map((t) => t.id);
  const known = new Set(truth.map((t) => t.id));
  return [...out, ...[...held.keys()].filter((id) => !known.has(id))];
}

function measureLookups(path: string, keys: { id: string; org: string }[]): number {
  if (keys.length === 0) return 0;
  const mirror = createMirror({ path, readonly: true });
  let n = 0;
  const start = process.hrtime.bigint();
  const deadline = start + 500_000_000n;
  // The promise resolves synchronously inside; awaiting would only measure the event loop.
  while (process.hrtime.bigint() < deadline) {
    for (let i = 0; i < 500; i++) {
      const k = keys[(n + i) % keys.length]!;
      void mirror.getOrganizationInvitation({ organizationId: k.org, invitationId: k.id });
    }
    n += 500;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  mirror.close();
  return n / seconds;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
