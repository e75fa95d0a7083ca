import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClerkClient } from '@clerk/backend';
import { isClerkAPIResponseError } from '@clerk/backend/errors';
import { BapiClient } from '../src/bapi/client.ts';
import { ConfigError, loadConfig } from '../src/config.ts';
import { runBackfill } from '../src/maintenance/backfill.ts';
import { SharedRateLimiter } from '../src/bapi/rate-limiter.ts';
import { StatePublisher } from '../src/state/publisher.ts';
import { SharedState } from '../src/state/shared-state.ts';
import { isLoopback } from '../src/http/metrics-route.ts';
import { createLogger } from '../src/logger.ts';
import { startService } from '../src/service.ts';
import { tempDir } from './helpers/fixtures.ts';
import { SECRET_KEY, settle, startHarness, type Harness } from './helpers/pipeline.ts';

const API_KEY = 'mirror-api-key-0123456789abcdef';
const tmp = tempDir();
let h: Harness;
let orgs: string[];

beforeAll(async () => {
  h = await startHarness({ name: 'read-api', dir: tmp.path, env: { MIRROR_API_KEY: API_KEY } });
  // Invitations reach the mirror only through webhooks here, as they would in production.
  orgs = [h.sim.store.createOrganization({ name: 'Read A' }).id, h.sim.store.createOrganization({ name: 'Read B' }).id];
  for (let i = 0; i < 30; i++) {
    const inv = h.sim.store.createInvitation(orgs[i % 2]!, { emailAddress: `reader${i}@example.com`, role: i % 3 ? 'org:member' : 'org:admin' });
    if (i % 4 === 1) h.sim.store.acceptInvitation(inv.id);
    if (i % 4 === 2) h.sim.store.revokeInvitation(inv.id);
  }
  await settle(h);
});
afterAll(async () => {
  await h?.stop();
  tmp.cleanup();
});

/** `token` null sends no bearer. */
const get = (path: string, token: string | null = API_KEY, headers: Record<string, string> = {}) =>
  fetch(`${h.service.url}${path}`, { headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...headers } });

describe('read API: an unchanged @clerk/backend client pointed at the mirror', () => {
  it('gets what the same client gets from Clerk (the simulator), single and lists', async () => {
    const fromMirror = createClerkClient({ secretKey: SECRET_KEY, apiUrl: h.service.url }).organizations;
    const fromClerk = createClerkClient({ secretKey: SECRET_KEY, apiUrl: h.sim.url }).organizations;
    const truth = h.sim.store.truth();
    expect(truth.length).toBe(30);
    for (const inv of truth.slice(0, 10)) {
      const params = { organizationId: inv.organization_id, invitationId: inv.id };
      expect(await fromMirror.getOrganizationInvitation(params)).toStrictEqual(await fromClerk.getOrganizationInvitation(params));
    }
    const listings = [
      {},
      { limit: 4, offset: 3 },
      { status: ['pending' as const] },
      { status: ['accepted' as const, 'revoked' as const], limit: 100 },
      { orderBy: 'email_address' },
      { orderBy: '-email_address', limit: 5 },
      { orderBy: '+created_at', offset: 10 },
    ];
    for (const organizationId of orgs) {
      for (const l of listings) {
        const params = { organizationId, ...l };
        const [m, c] = [await fromMirror.getOrganizationInvitationList(params), await fromClerk.getOrganizationInvitationList(params)];
        expect(m.totalCount).toBeGreaterThan(0);
        expect(m).toStrictEqual(c);
      }
    }
  });

  it('answers a miss with the same ClerkAPIResponseError (404, resource_not_found)', async () => {
    const client = createClerkClient({ secretKey: SECRET_KEY, apiUrl: h.service.url });
    const err = await client.organizations.getOrganizationInvitation({ organizationId: orgs[0]!, invitationId: 'orginv_doesnotexist' }).catch((e: unknown) => e);
    expect(isClerkAPIResponseError(err) && err.status === 404 && err.errors[0]?.code === 'resource_not_found').toBe(true);
    // Another organization's invitation is a miss too, not a leak.
    const other = h.sim.store.truth().find((i) => i.organization_id === orgs[1])!;
    const cross = await client.organizations.getOrganizationInvitation({ organizationId: orgs[0]!, invitationId: other.id }).catch((e: unknown) => e);
    expect(isClerkAPIResponseError(cross) && cross.status === 404).toBe(true);
  });

  it('serves the stored JSON byte for byte with content-type application/json', async () => {
    const inv = h.sim.store.truth()[3]!;
    const res = await get(`/v1/organizations/${inv.organization_id}/invitations/${inv.id}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const stored = h.service.mirror!.sqlite.prepare('SELECT raw FROM organization_invitations WHERE id = ?').pluck().get(inv.id);
    expect(await res.text()).toBe(stored);
  });
});

describe('read API: parameters', () => {
  it.each([
    ['limit=0', 'limit'],
    ['limit=501', 'limit'],
    ['limit=ten', 'limit'],
    ['limit=5&limit=6', 'limit'],
    ['offset=-1', 'offset'],
    ['order_by=name', 'order_by'],
    ['status=expired_or_not', 'status'],
  ])('%s answers 422 naming %s', async (query, param) => {
    const res = await get(`/v1/organizations/${orgs[0]}/invitations?${query}`);
    expect(res.status).toBe(422);
    const body = (await res.json()) as { errors: { code: string; meta?: { param_name?: string } }[] };
    expect(body.errors[0]?.meta?.param_name).toBe(param);
  });

  it('accepts limit 500, a repeated status and a comma-separated one', async () => {
    const repeated = (await (await get(`/v1/organizations/${orgs[0]}/invitations?limit=500&status=accepted&status=revoked`)).json()) as { total_count: number };
    const comma = (await (await get(`/v1/organizations/${orgs[0]}/invitations?status=accepted,revoked`)).json()) as { total_count: number };
    const truth = h.sim.store.truth().filter((i) => i.organization_id === orgs[0] && i.status !== 'pending').length;
    expect(repeated.total_count).toBe(truth);
    expect(comma.total_count).toBe(truth);
  });
});

describe('read API: hostile ids', () => {
  it.each([
    '/v1/organizations/org_x/invitations/..%2F..%2Fetc%2Fpasswd',
    "/v1/organizations/org_x/invitations/orginv_1'%20OR%20'1'='1",
    '/v1/organizations/org_x%00/invitations/orginv_1',
    '/v1/organizations/..%2F/invitations',
    `/v1/organizations/org_${'a'.repeat(90)}/invitations/orginv_1`,
    `/v1/organizations/org_x/invitations/orginv_${'b'.repeat(5000)}`,
    '/v1/organizations/org_x/invitations/%zz',
    '/v1/organizations/org_x/invitations/%',
    '/v1/organizations/org_x/invitations/orginv_%F0%9F%92%A5',
  ])('%s answers 404 in Clerk JSON', async (path) => {
    const res = await get(path);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('resource_not_found');
  });
});

describe('read API: auth', () => {
  const inv = () => h.sim.store.truth()[0]!;
  const path = () => `/v1/organizations/${inv().organization_id}/invitations/${inv().id}`;

  it('accepts MIRROR_API_KEY and CLERK_SECRET_KEY as bearer tokens', async () => {
    expect((await get(path(), API_KEY)).status).toBe(200);
    expect((await get(path(), SECRET_KEY)).status).toBe(200);
    expect((await get(path(), null, { authorization: `bearer  ${API_KEY}` })).status).toBe(200);
  });

  const MALFORMED = 'authorization_header_format_invalid';
  const WRONG = 'clerk_key_invalid';
  it.each([
    ['no header', null, {}, MALFORMED],
    ['a wrong token', 'x'.repeat(API_KEY.length), {}, WRONG],
    ['a near miss', `${API_KEY.slice(0, -1)}g`, {}, WRONG],
    ['a prefix of the key', API_KEY.slice(0, 10), {}, WRONG],
    ['the key plus a character', `${API_KEY}x`, {}, WRONG],
    ['the key as Basic password', null, { authorization: `Basic ${Buffer.from(`u:${API_KEY}`).toString('base64')}` }, MALFORMED],
    ['another scheme', null, { authorization: `Token ${API_KEY}` }, MALFORMED],
  ])('refuses %s with 401 and Clerk error JSON', async (_name, token, headers, code) => {
    const res = await get(path(), token, headers);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
    const body = (await res.json()) as { errors: { code: string }[] };
    expect(body.errors[0]?.code).toBe(code);
  });

  it('asks for a credential on unknown /v1 paths too, then answers 501 not_mirrored', async () => {
    expect((await get('/v1/users', null)).status).toBe(401);
    // Even for URLs the router itself refuses.
    expect((await get('/v1/organizations/org_x/invitations/%zz', null)).status).toBe(401);
    expect((await get(`/v1/organizations/org_x/invitations/orginv_${'c'.repeat(5000)}`, null)).status).toBe(401);
    expect((await get('/v1/users')).status).toBe(501);
  });

  it('leaves the webhook route, /healthz and /readyz open; /readyz waits for a filled shared state', async () => {
    expect((await get('/healthz', null)).status).toBe(200);
    // Only webhooks so far: the replica follows, but the shared state has never had a backfill.
    const unfilled = await get('/readyz', null);
    expect(unfilled.status).toBe(503);
    expect(await unfilled.json()).toEqual({ status: 'unavailable', failing: { replica: 'the shared state has not been filled by a backfill yet' } });
    const redis = new Redis(h.service.redisUrl!);
    try {
      const { keys } = h;
      const summary = await runBackfill({
        state: new SharedState(redis, keys),
        publisher: new StatePublisher({ connection: redis, keys, retentionMs: 60_000 }),
        bapi: new BapiClient({ apiUrl: h.sim.url, secretKey: SECRET_KEY }),
        limiter: new SharedRateLimiter({ connection: redis, keys, rateLimit: { max: 1000, windowMs: 10_000 } }),
        log: createLogger({ level: 'silent' }),
      });
      expect(summary.status).toBe('completed');
    } finally {
      await redis.quit();
    }
    const ready = await get('/readyz', null);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { checks: string[] }).checks.sort()).toEqual(['bapi', 'mirror', 'redis', 'replica']);
    const hook = await fetch(h.webhookUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(hook.status).toBe(400);
  });

  it('refuses to start the read API without any credential (fail closed)', async () => {
    const config = loadConfig({ MIRROR_DB_PATH: `${tmp.path}/never.db`, PORT: '0' });
    const err = await startService({ config, log: createLogger({ level: 'silent' }), roles: ['api'] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe('MIRROR_API_KEY');
  });
});

describe('operations endpoints', () => {
  it('/metrics needs the bearer and reports the pipeline in Prometheus format', async () => {
    expect((await get('/metrics', null)).status).toBe(401);
    const res = await get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1]);
    const created = h.service.stats.webhooks.get('accepted:organizationInvitation.created');
    expect(value(/^clerk_mirror_webhooks_total\{outcome="accepted",type="organizationInvitation.created"\} (\d+)$/m)).toBe(created);
    expect(value(/^clerk_mirror_jobs_total\{outcome="completed"\} (\d+)$/m)).toBe(h.service.stats.jobs.completed);
    expect(value(/^clerk_mirror_bapi_request_duration_seconds_count\{status="200"\} (\d+)$/m)).toBe(h.service.stats.bapiCalls({ status: '200' }));
    // No series until a first such call: the harness's invitations may all have come through batches.
    const webhookCalls = h.service.stats.bapiCalls({ caller: 'webhook', status: '200' });
    const webhookSeries = value(/^clerk_mirror_bapi_requests_total\{caller="webhook",status="200"\} (\d+)$/m);
    expect(webhookCalls === 0 ? Number.isNaN(webhookSeries) : webhookSeries === webhookCalls).toBe(true);
    // The default share of the harness's sk_test_ key.
    expect(value(/^clerk_mirror_bapi_budget_limit_requests (\d+)$/m)).toBe(30);
    // Spent or not depends on how many calls this file's tests made in the last window; the
    // streak is 0 whenever the sampled window had room left.
    const spent = value(/^clerk_mirror_bapi_budget_spent_requests (\d+)$/m);
    const exhausted = value(/^clerk_mirror_bapi_budget_exhausted_seconds (\d+)$/m);
    expect(Number.isInteger(spent) && Number.isInteger(exhausted)).toBe(true);
    if (spent < 30) expect(exhausted).toBe(0);
    expect(value(/^clerk_mirror_enqueue_duration_seconds_count (\d+)$/m)).toBeGreaterThanOrEqual(created!);
    expect(value(/^clerk_mirror_sync_lag_seconds_count (\d+)$/m)).toBe(h.service.stats.jobs.completed);
    const truth = h.sim.store.truth();
    for (const status of ['pending', 'accepted', 'revoked']) {
      expect(value(new RegExp(`^clerk_mirror_invitations\\{status="${status}"\\} (\\d+)$`, 'm'))).toBe(truth.filter((i) => i.status === status).length);
    }
    expect(value(/^clerk_mirror_queue_jobs\{state="failed"\} (\d+)$/m)).toBe(0);
    // Settled: nothing waits, and the age says so rather than going missing.
    expect(value(/^clerk_mirror_queue_oldest_waiting_seconds (\d+)$/m)).toBe(0);
    // Node's own metrics under the names standard dashboards query, and the build.
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(text).not.toMatch(/^clerk_mirror_process_/m);
    const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    expect(text).toContain(`clerk_mirror_build_info{version="${version}",node="${process.versions.node}"} 1`);
    // Ages are timestamps: no gauge that reads NaN before the first success.
    expect(text).not.toMatch(/^clerk_mirror_seconds_since_/m);
    expect(text).not.toMatch(/ NaN$/m);
    // A number an alert can compare with time(): 0 before any success, never NaN.
    const last = value(/^clerk_mirror_last_reconcile_timestamp_seconds (\d+)$/m);
    expect(Number.isInteger(last)).toBe(true);
    expect(last === 0 || Math.abs(last - Date.now() / 1000) < 86_400 * 30).toBe(true);
    // The replica: where it stands, and every change it applied.
    const status = await h.service.replica!.status();
    expect(value(/^clerk_mirror_replica_state\{state="following"\} (\d+)$/m)).toBe(1);
    expect(value(/^clerk_mirror_replica_state\{state="stale"\} (\d+)$/m)).toBe(0);
    expect(value(/^clerk_mirror_replica_entries_behind (\d+)$/m)).toBe(0);
    expect(value(/^clerk_mirror_replica_seconds_behind (\d+)$/m)).toBe(0);
    expect(value(/^clerk_mirror_replica_seq (\d+)$/m)).toBe(status.seq);
    expect(value(/^clerk_mirror_replica_bootstraps_total (\d+)$/m)).toBe(status.bootstraps);
    // What the pipeline refused to believe, and what the replica failed to write, read from the stats.
    expect(value(/^clerk_mirror_suspect_events_total\{kind="future_updated_at"\} (\d+)$/m)).toBe(h.service.stats.suspectEvents.futureUpdatedAt);
    expect(value(/^clerk_mirror_suspect_events_total\{kind="other_organization"\} (\d+)$/m)).toBe(h.service.stats.suspectEvents.otherOrganization);
    expect(text).toMatch(/^# TYPE clerk_mirror_replica_write_failures_total counter$/m);
    expect(text).toMatch(/^# TYPE clerk_mirror_replica_file_reopens_total counter$/m);
    expect(value(/^clerk_mirror_replica_applied_total (\d+)$/m)).toBe(h.service.stats.replica.applied);
    expect(h.service.stats.replica.applied).toBeGreaterThanOrEqual(truth.length);
    expect(value(/^clerk_mirror_replica_lag_seconds_count (\d+)$/m)).toBeGreaterThan(0);
    expect(value(/^clerk_mirror_state_publishes_total\{outcome="inserted"\} (\d+)$/m)).toBe(h.service.stats.writes.inserted);
  });

  it('/metrics counts and times read API answers by route and status, on the fast path and through Fastify', async () => {
    const inv = h.sim.store.truth().find((i) => i.status === 'pending')!;
    const scrape = async () => {
      const text = await (await get('/metrics')).text();
      return (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
    };
    const before = await scrape();
    const count = (route: string, status: number) => new RegExp(`^clerk_mirror_read_requests_total\\{route="${route}",status="${status}"\\} (\\d+)$`, 'm');
    const timed = (route: string) => new RegExp(`^clerk_mirror_read_request_duration_seconds_count\\{route="${route}"\\} (\\d+)$`, 'm');
    for (let i = 0; i < 3; i++) expect((await get(`/v1/organizations/${inv.organization_id}/invitations/${inv.id}`)).status).toBe(200);
    expect((await get(`/v1/organizations/${inv.organization_id}/invitations/orginv_nosuchinvitation`)).status).toBe(404);
    expect((await get(`/v1/organizations/${inv.organization_id}/invitations?limit=2`)).status).toBe(200);
    expect((await get(`/v1/organizations/${inv.organization_id}/invitations/pending`)).status).toBe(200);
    expect((await get(`/v1/users`)).status).toBe(501);
    expect((await get(`/v1/organizations/${inv.organization_id}/invitations/${inv.id}`, null)).status).toBe(401);
    const after = await scrape();
    const delta = (re: RegExp) => after(re) - before(re);
    expect(delta(count('invitation', 200))).toBe(3);
    expect(delta(count('invitation', 404))).toBe(1);
    expect(delta(count('invitation', 401))).toBe(1);
    expect(delta(count('list', 200))).toBe(1);
    expect(delta(count('pending_list', 200))).toBe(1);
    expect(delta(count('other', 501))).toBe(1);
    expect(delta(timed('invitation'))).toBe(5);
    expect(delta(timed('list'))).toBe(1);
  });

  it('/metrics of a process without a credential answers loopback scrapes only', async () => {
    const config = loadConfig({ CLERK_WEBHOOK_SIGNING_SECRET: 'whsec_' + Buffer.alloc(32, 3).toString('base64'), ...h.redis.env, PORT: '0' });
    const receiverOnly = await startService({ config, log: createLogger({ level: 'silent' }), roles: ['receiver'] });
    try {
      const res = await fetch(`${receiverOnly.url}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toMatch(/^# TYPE clerk_mirror_webhooks_total counter/m);
      expect((await fetch(`${receiverOnly.url}/admin/queues`)).status).toBe(404);
    } finally {
      await receiverOnly.stop();
    }
    expect(isLoopback('127.0.0.1')).toBe(true);
    expect(isLoopback('::ffff:127.0.0.5')).toBe(true);
    expect(isLoopback('::1')).toBe(true);
    expect(isLoopback('10.0.0.1')).toBe(false);
    expect(isLoopback('::ffff:192.168.1.1')).toBe(false);
    expect(isLoopback(undefined)).toBe(false);
  });

  it('serves bull-board at /admin/queues behind the same credential (Bearer or a browser Basic login)', async () => {
    const anonymous = await get('/admin/queues', null);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm="clerk-invitation-mirror"/);
    expect((await get('/admin/queues', null, { authorization: `Basic ${Buffer.from(`ops:wrong-${API_KEY}`).toString('base64')}` })).status).toBe(401);
    const page = await get('/admin/queues', null, { authorization: `Basic ${Buffer.from(`ops:${API_KEY}`).toString('base64')}` });
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<html/i);
    const api = await get('/admin/queues/api/queues');
    expect(api.status).toBe(200);
    const body = (await api.json()) as { queues: { name: string }[] };
    expect(body.queues.map((q) => q.name).sort()).toEqual(['invitation-maintenance', 'invitation-sync']);
  });
});
