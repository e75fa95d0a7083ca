import { takeOverSignals } from '../lifecycle/signals.ts';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { SECRET_KEY_PATTERN } from '../clerk/secret-key.ts';
import { randomBase62 } from '../simulator/ids.ts';
import { startSimulator, type FaultOptions } from '../simulator/index.ts';
import type { DeliveryOptions } from '../simulator/delivery.ts';
import { UsageError, type Command } from './command.ts';

const HELP = `Usage: clerk-invitation-mirror simulator [options]

Runs a local stand-in for Clerk's Backend API (organization invitations) that also sends
Svix-signed webhooks, so the mirror can be run and tested without reaching Clerk. Point the
mirror at it with CLERK_API_URL, CLERK_SECRET_KEY and CLERK_WEBHOOK_SIGNING_SECRET as printed
at start. Runs until SIGINT or SIGTERM.

Server:
  --port N                 TCP port, 0 for a free one (default 8787)
  --host H                 address to listen on (default 127.0.0.1)
  --secret-key KEY         sk_test_… or sk_live_… key to accept (default: a random sk_test_ key, printed)
  --signing-secret SECRET  whsec_… secret webhooks are signed with (default: random, printed)
  --seed N                 seed for ids, generated data, faults and delivery quirks (default 1)

Data:
  --organizations N        seed N organizations at start (no webhooks are sent for seeded data)
  --invitations N          invitations per seeded organization (default 0)
  --no-instance-list       answer 404 on GET /v1/organization_invitations

Rate limit (one fixed window per instance, opened by the first request after the last one ended):
  --rate-limit N           requests per window, 0 for none (default 100 for sk_test_, 1000 for sk_live_)
  --rate-window-ms N       window length (default 10000)

BAPI faults (shares of requests, 0 to 1):
  --latency-ms N|MIN-MAX   delay added before answering (default 0)
  --error-rate X           answered 500/502/503
  --hang-rate X            never answered
  --drop-rate X            connection closed without an answer

Webhooks:
  --webhook-url URL        endpoint to deliver to; repeat for several
  --webhook-drop-rate X    deliveries never attempted
  --webhook-duplicate-rate X   deliveries sent twice with one svix-id
  --webhook-reorder-rate X     deliveries held back so later ones overtake them
  --webhook-delay-ms N|MIN-MAX delay before each attempt
  --webhook-retry-scale X  Svix's retry schedule (5 s, 5 min, 30 min, …) times X (default 0.001)
  --webhook-other-event-rate X chance of an unrelated Clerk event beside each invitation event

Control API (Authorization: Bearer <secret key>), under /_control/:
  POST seed {organizations, invitationsPerOrganization}   POST organizations {name?}
  POST organizations/:id/invitations {emailAddress, role?, …}   DELETE organizations/:id
  POST invitations/:id/accept|revoke|expire   PATCH invitations/:id/metadata
  POST clock/advance {ms}   GET clock   GET truth   GET|PUT faults   PUT rate-limit {limit, windowMs}
  PUT instance-list {available}   PUT delivery {…}   POST|DELETE endpoints {url}
  GET stats   POST stats/reset   POST idle (waits until every webhook is delivered or given up)

Options:
  -h, --help               show this help`;

function number(name: string, raw: string | undefined, min: number, max = Infinity): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`--${name} expects a number${max === Infinity ? ` of at least ${min}` : ` from ${min} to ${max}`}, got "${raw}"`);
  }
  return n;
}

function range(name: string, raw: string | undefined): number | { min: number; max: number } | undefined {
  const m = raw === undefined ? null : /^(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$/.exec(raw);
  if (!m) return number(name, raw, 0);
  const [min, max] = [Number(m[1]), Number(m[2])];
  if (max < min) throw new UsageError(`--${name} expects MIN-MAX with MIN <= MAX, got "${raw}"`);
  return { min, max };
}

const rate = (name: string, raw: string | undefined) => number(name, raw, 0, 1);
const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

export const simulatorCommand: Command = {
  summary: 'run a local Clerk Backend API simulator that also sends webhooks',
  help: HELP,
  async run(argv) {
    const str = { type: 'string' } as const;
    const { values: v } = parseArgs({
      args: argv,
      strict: true,
      options: {
        port: str, host: str, 'secret-key': str, 'signing-secret': str, seed: str,
        organizations: str, invitations: str, 'no-instance-list': { type: 'boolean' },
        'rate-limit': str, 'rate-window-ms': str,
        'latency-ms': str, 'error-rate': str, 'hang-rate': str, 'drop-rate': str,
        'webhook-url': { type: 'string', multiple: true }, 'webhook-drop-rate': str, 'webhook-duplicate-rate': str,
        'webhook-reorder-rate': str, 'webhook-delay-ms': str, 'webhook-retry-scale': str, 'webhook-other-event-rate': str,
      },
    });
    const generatedKey = v['secret-key'] === undefined;
    const generatedSecret = v['signing-secret'] === undefined;
    const secretKey = v['secret-key'] ?? `sk_test_${randomBase62(40)}`;
    const signingSecret = v['signing-secret'] ?? `whsec_${randomBytes(24).toString('base64')}`;
    if (!SECRET_KEY_PATTERN.test(secretKey)) throw new UsageError('--secret-key must start with sk_test_ or sk_live_');
    if (!signingSecret.startsWith('whsec_')) throw new UsageError('--signing-secret must start with whsec_');
    for (const u of v['webhook-url'] ?? []) if (!URL.canParse(u)) throw new UsageError(`--webhook-url expects an absolute URL, got "${u}"`);
    const organizations = number('organizations', v.organizations, 0);
    const invitations = number('invitations', v.invitations, 0) ?? 0;

    const faults: Partial<FaultOptions> = defined({
      latencyMs: range('latency-ms', v['latency-ms']),
      errorRate: rate('error-rate', v['error-rate']),
      hangRate: rate('hang-rate', v['hang-rate']),
      dropRate: rate('drop-rate', v['drop-rate']),
    });
    const delivery: Partial<DeliveryOptions> = defined({
      dropRate: rate('webhook-drop-rate', v['webhook-drop-rate']),
      duplicateRate: rate('webhook-duplicate-rate', v['webhook-duplicate-rate']),
      reorderRate: rate('webhook-reorder-rate', v['webhook-reorder-rate']),
      delayMs: range('webhook-delay-ms', v['webhook-delay-ms']),
      retryScale: number('webhook-retry-scale', v['webhook-retry-scale'], 0),
      otherEventRate: rate('webhook-other-event-rate', v['webhook-other-event-rate']),
    });

    const sim = await startSimulator({
      port: number('port', v.port, 0, 65535) ?? 8787,
      host: v.host ?? '127.0.0.1',
      secretKey,
      signingSecret,
      seed: number('seed', v.seed, 0),
      rateLimit: number('rate-limit', v['rate-limit'], 0),
      rateWindowMs: number('rate-window-ms', v['rate-window-ms'], 1),
      faults,
      delivery,
      webhookUrls: v['webhook-url'] ?? [],
      instanceListAvailable: !v['no-instance-list'],
    });
    const seeded = organizations ? sim.store.seed({ organizations, invitationsPerOrganization: invitations }) : undefined;

    // The credentials below are the simulator's own throwaway test credentials, printed so the
    // mirror can be pointed at it; credentials passed in by flag are never echoed.
    console.log(`Clerk BAPI simulator listening on ${sim.url}
  CLERK_API_URL=${sim.url}
  CLERK_SECRET_KEY=${generatedKey ? secretKey : '(as given by --secret-key)'}
  CLERK_WEBHOOK_SIGNING_SECRET=${generatedSecret ? signingSecret : '(as given by --signing-secret)'}
${seeded ? `Seeded ${seeded.organizationIds.length} organization(s) with ${seeded.invitationIds.length} invitation(s).\n` : ''}Webhooks: ${(v['webhook-url'] ?? []).join(', ') || 'none (add with POST /_control/endpoints)'}
Control API: ${sim.url}/_control/ (same Bearer key). Stop with Ctrl-C.`);

    await new Promise<void>((resolve) => takeOverSignals(() => resolve()));
    await sim.close();
    console.log('simulator stopped');
    return 0;
  },
};
