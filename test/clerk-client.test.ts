import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  BapiError,
  BapiFatalError,
  BapiNotFoundError,
  BapiRateLimitedError,
  BapiRetryableError,
  classifyError,
} from '../src/bapi/errors.ts';
import { BapiClient, CLERK_API_VERSION, USER_AGENT } from '../src/bapi/client.ts';
import { startSimulator, type Simulator } from '../src/simulator/index.ts';

const SECRET = `sk_test_${randomBytes(18).toString('hex')}`;
const ORG = 'org_2xQ6yN8cTtHh4Jk2mPq7rSd1Ef0';
const INV = 'orginv_2xQ7dM3bVvQpZr1s9kLw0aYt8Hc';
const EMAIL = 'ada@example.com';

/**
 * The shared fixture as BAPI might lay it out: unusual spacing, keys in a non-alphabetical
 * order, an escaped and a literal non-ASCII character, a field the schema does not know.
 */
const RAW_INVITATION = `{"updated_at":1764796800000 ,  "object":"organization_invitation","id":"${INV}",
  "email_address":"${EMAIL}","role":"org:member","role_name":"Member","organization_id":"${ORG}",
  "inviter_id":"user_2xQ5aB9cDdEe6Ff7Gg8Hh9Ii0Jj","public_inviter_data":null,"status":"pending",
  "public_metadata":{"team":"compil\\u00e9rs","note":"Zoë"},"private_metadata":{"invitedVia":"admin-console"},
  "url":null,"expires_at":1766102400000,"created_at":1764796800000,"a_field_from_the_future":[1.50,{"x":true}]}`;

/** fixtures/bapi-error-404.json */
const NOT_FOUND_BODY = JSON.stringify({
  errors: [{ code: 'resource_not_found', message: 'not found', long_message: 'Resource not found' }],
  clerk_trace_id: '5b6d2f3c1e0a4f7b9c8d7e6f5a4b3c2d',
});

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** One real HTTP server for the whole file; each test sets what it answers. */
let handler: Handler = (_req, res) => res.writeHead(500).end();
const seen: Seen[] = [];
let baseUrl = '';
const server = createServer((req, res) => {
  seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
  req.resume();
  handler(req, res);
});

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
afterEach(() => {
  seen.length = 0;
});

function json(status: number, body: string, headers: Record<string, string> = {}): Handler {
  return (_req, res) => res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(body);
}

const client = (opts: Partial<ConstructorParameters<typeof BapiClient>[0]> = {}) =>
  new BapiClient({ apiUrl: baseUrl, secretKey: SECRET, now: () => 1_700_000_000_000, ...opts });

async function failure(p: Promise<unknown>): Promise<BapiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BapiError);
  const e = err as BapiError;
  // Whatever failed, nothing a logger would print may carry the key or an e-mail address.
  const printed = `${e.message} ${e.stack ?? ''} ${JSON.stringify({ ...e })}`;
  expect(printed).not.toContain(SECRET);
  expect(printed).not.toMatch(/[\w.+-]+@[\w-]+\.[\w.]+/);
  return e;
}

describe('BapiClient against a BAPI-shaped server', () => {
  it('returns the invitation text byte for byte, parsed in the same key order', async () => {
    handler = json(200, RAW_INVITATION);
    const got = await client().getOrganizationInvitation(ORG, INV);
    expect(got.raw).toBe(RAW_INVITATION);
    expect(got.receivedAt).toBe(1_700_000_000_000);
    expect(got.invitation).toEqual(JSON.parse(RAW_INVITATION));
    expect(Object.keys(got.invitation)).toEqual(Object.keys(JSON.parse(RAW_INVITATION) as object));
    expect(got.invitation.id).toBe(INV);
  });

  it('sends the SDK headers and the unencoded path', async () => {
    handler = json(200, RAW_INVITATION);
    await client({ apiUrl: `${baseUrl}/` }).getOrganizationInvitation(ORG, INV);
    expect(seen).toHaveLength(1);
    const [req] = seen;
    expect(req!.method).toBe('GET');
    expect(req!.url).toBe(`/v1/organizations/${ORG}/invitations/${INV}`);
    expect(req!.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(req!.headers['clerk-api-version']).toBe(CLERK_API_VERSION);
    expect(CLERK_API_VERSION).toBe('2026-05-12');
    expect(req!.headers['user-agent']).toBe(USER_AGENT);
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(USER_AGENT).toBe(`clerk-invitation-mirror/${version} (@clerk/backend compatible)`);
    expect(req!.headers['content-type']).toBe('application/json');
  });

  it.each(['', '.', '..', `${ORG}/..`, 'org_1/invitations', 'org_1?x=1', 'org_1#x', 'org 1', 'org_1\n', 'org_1\t', '%2e%2e', 'org_%2F', 'a\\b'])(
    'refuses the path-unsafe id %j without a request',
    async (bad) => {
      handler = json(200, RAW_INVITATION);
      const c = client();
      expect(classifyError(await failure(c.getOrganizationInvitation(bad, INV)))).toBe('not_found');
      expect(classifyError(await failure(c.getOrganizationInvitation(ORG, bad)))).toBe('not_found');
      expect(classifyError(await failure(c.listOrganizationInvitations(bad, {})))).toBe('not_found');
      expect(seen).toHaveLength(0);
    },
  );

  it('reads a 404 with Clerk error JSON as not found, keeping the trace id', async () => {
    handler = json(404, NOT_FOUND_BODY);
    const e = await failure(client().getOrganizationInvitation(ORG, INV));
    expect(e).toBeInstanceOf(BapiNotFoundError);
    expect(e).toMatchObject({ kind: 'not_found', status: 404, clerkTraceId: '5b6d2f3c1e0a4f7b9c8d7e6f5a4b3c2d', codes: ['resource_not_found'] });
    expect(classifyError(e)).toBe('not_found');
  });

  it('does not read a 404 without Clerk error JSON as "gone" (wrong API URL)', async () => {
    handler = (_req, res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not Found</h1>');
    const e = await failure(client().getOrganizationInvitation(ORG, INV));
    expect(e).toBeInstanceOf(BapiFatalError);
    expect(e.status).toBe(404);
  });

  it.each([
    ['7', 7000],
    ['0', 0],
    [undefined, 1000],
    ['soon', 1000],
    ['Tue, 14 Nov 2023 22:13:25 GMT', 5000],
  ])('reads 429 with Retry-After %j as rate limited for %i ms', async (retryAfter, ms) => {
    const body = JSON.stringify({ errors: [{ code: 'too_many_requests', message: 'Too many requests' }] });
    handler = json(429, body, retryAfter === undefined ? {} : { 'retry-after': retryAfter });
    // now() is 2023-11-14T22:13:20Z, five seconds before the HTTP date above.
    const e = await failure(client().listOrganizations({}));
    expect(e).toBeInstanceOf(BapiRateLimitedError);
    expect((e as BapiRateLimitedError).retryAfterMs).toBe(ms);
    expect(e).toMatchObject({ kind: 'rate_limited', status: 429, codes: ['too_many_requests'] });
  });

  it.each([500, 502, 503, 504, 408])('reads %i as retryable', async (status) => {
    handler = json(status, JSON.stringify({ errors: [{ code: 'internal_clerk_error', message: 'Oops' }] }));
    const e = await failure(client().getOrganizationInvitation(ORG, INV));
    expect(e).toBeInstanceOf(BapiRetryableError);
    expect(e.status).toBe(status);
    expect(classifyError(e)).toBe('retryable');
  });

  it('reads a non-JSON 502 from a proxy as retryable', async () => {
    handler = (_req, res) => res.writeHead(502, { 'content-type': 'text/html', 'cf-ray': '8a1b2c3d4e5f-AMS' }).end('<html>Bad gateway</html>');
    const e = await failure(client().getOrganizationInvitation(ORG, INV));
    expect(e).toBeInstanceOf(BapiRetryableError);
    expect(e).toMatchObject({ status: 502, clerkTraceId: '8a1b2c3d4e5f-AMS', codes: [] });
  });

  it('gives up on a server that never answers, as retryable', async () => {
    handler = () => undefined;
    const c = client({ timeoutMs: 150 });
    const e = await failure(c.getOrganizationInvitation(ORG, INV));
    expect(e).toBeInstanceOf(BapiRetryableError);
    expect(e.status).toBeUndefined();
    expect(e.message).toMatch(/timed out/);
    expect(seen).toHaveLength(1);
  });

  it('gives up on a body that stops half-way, as retryable', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '5000' });
      res.write(RAW_INVITATION.slice(0, 40));
    };
    const e = await failure(client({ timeoutMs: 150 }).getOrganizationInvitation(ORG, INV));
    expect(e).toBeInstanceOf(BapiRetryableError);
  });

  it('reads a destroyed socket as retryable', async () => {
    handler = (req) => req.socket.destroy();
    const c = client();
    const e = await failure(c.getOrganizationInvitation(ORG, INV));
    expect(e).toBeInstanceOf(BapiRetryableError);
    expect(e.status).toBeUndefined();
    expect(e.message).toMatch(/network/i);
  });

  it('reads a refused connection as retryable', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const e = await failure(client({ apiUrl: `http://127.0.0.1:${port}` }).getOrganizationInvitation(ORG, INV));
    expect(e).toBeInstanceOf(BapiRetryableError);
    expect(e.message).toMatch(/ECONNREFUSED/);
  });

  it.each([401, 403])('reads %i as fatal (configuration)', async (status) => {
    handler = json(status, JSON.stringify({ errors: [{ code: 'authorization_invalid', message: 'Unauthorized request' }] }));
    const e = await failure(client().getOrganizationInvitation(ORG, INV));
    expect(e).toBeInstanceOf(BapiFatalError);
    expect(e.status).toBe(status);
    expect(e.message).toMatch(/CLERK_SECRET_KEY/);
  });

  it.each([400, 422])('reads %i as fatal, never quoting what Clerk says (it may echo the key or an address)', async (status) => {
    handler = json(
      status,
      JSON.stringify({ errors: [{ code: 'form_param_value_invalid', message: `${EMAIL} is invalid`, long_message: `key ${SECRET} and ${EMAIL}` }] }),
    );
    const e = await failure(client().listOrganizationInvitations(ORG, { limit: 1000 }));
    expect(e).toBeInstanceOf(BapiFatalError);
    expect(e).toMatchObject({ status, codes: ['form_param_value_invalid'] });
  });

  it.each([
    ['not JSON', 'OK'],
    ['the wrong object', RAW_INVITATION.replace('"organization_invitation"', '"invitation"')],
    ['a mistyped field next to an e-mail address', RAW_INVITATION.replace('"updated_at":1764796800000', '"updated_at":"yesterday"')],
    ['another invitation', RAW_INVITATION.replace(`"id":"${INV}"`, '"id":"orginv_other"')],
    ['a byte-order mark', `\ufeff${RAW_INVITATION}`],
  ])('reads a 2xx with %s as fatal', async (_what, body) => {
    handler = json(200, body);
    const e = await failure(client().getOrganizationInvitation(ORG, INV));
    expect(e).toBeInstanceOf(BapiFatalError);
    expect(e.status).toBe(200);
  });

  it('reads a 2xx that is not UTF-8 as fatal rather than storing mangled text', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(Buffer.concat([Buffer.from(RAW_INVITATION.slice(0, -1)), Buffer.from(',"x":"\xff"}', 'latin1')]));
    };
    expect(await failure(client().getOrganizationInvitation(ORG, INV))).toBeInstanceOf(BapiFatalError);
  });

  it('classifies foreign errors as fatal', () => {
    expect(classifyError(new TypeError('bug'))).toBe('fatal');
    expect(classifyError('string')).toBe('fatal');
  });

  it('lists instance invitations with repeated status parameters, keeping item key order', async () => {
    const page = `{"data":[${RAW_INVITATION}],"total_count":31}`;
    handler = json(200, page);
    const c = client();
    const got = await c.listInstanceInvitations({ limit: 100, offset: 200, status: ['pending', 'accepted'], orderBy: '-created_at' });
    expect(seen[0]!.url).toBe('/v1/organization_invitations?limit=100&offset=200&status=pending&status=accepted&order_by=-created_at');
    expect(got.totalCount).toBe(31);
    expect(got.receivedAt).toBe(1_700_000_000_000);
    expect(JSON.stringify(got.data[0])).toBe(JSON.stringify(JSON.parse(RAW_INVITATION)));

    await c.listOrganizationInvitations(ORG, { offset: 0 });
    expect(seen[1]!.url).toBe(`/v1/organizations/${ORG}/invitations?offset=0`);
    expect(seen).toHaveLength(2);
  });

  it('lists organizations and refuses a malformed page', async () => {
    handler = json(200, '{"data":[{"object":"organization","id":"org_1","name":"A"}],"total_count":1}');
    const c = client();
    const got = await c.listOrganizations({ limit: 500 });
    expect(seen[0]!.url).toBe('/v1/organizations?limit=500');
    expect(got).toMatchObject({ data: [{ id: 'org_1', name: 'A' }], totalCount: 1 });

    handler = json(200, '{"data":[{"object":"organization"}],"total_count":1}');
    expect(await failure(c.listOrganizations({}))).toBeInstanceOf(BapiFatalError);
    handler = json(200, '{"data":[],"total_count":-1}');
    expect(await failure(c.listInstanceInvitations({}))).toBeInstanceOf(BapiFatalError);
  });

  it('refuses a secret key that would break the header, without quoting it', () => {
    const bad = `${SECRET}\n`;
    expect(() => new BapiClient({ apiUrl: baseUrl, secretKey: bad })).toThrow(BapiFatalError);
    try {
      new BapiClient({ apiUrl: baseUrl, secretKey: bad });
    } catch (e) {
      expect(String((e as Error).message)).not.toContain(SECRET);
    }
  });
});

describe('BapiClient against the simulator', () => {
  let sim: Simulator;
  const signingSecret = `whsec_${randomBytes(24).toString('base64')}`;

  beforeAll(async () => {
    sim = await startSimulator({ secretKey: SECRET, signingSecret, seed: 42, rateLimit: 0 });
  });
  afterAll(async () => {
    await sim.close();
  });
  afterEach(() => {
    sim.setFaults({ errorRate: 0, hangRate: 0, dropRate: 0 });
    sim.setRateLimit(0);
  });

  const simClient = (opts: Partial<ConstructorParameters<typeof BapiClient>[0]> = {}) =>
    new BapiClient({ apiUrl: sim.url, secretKey: SECRET, timeoutMs: 2000, ...opts });

  it('fetches an invitation exactly as the simulator holds it', async () => {
    const org = sim.store.createOrganization();
    const inv = sim.store.createInvitation(org.id, { emailAddress: 'grace@example.com' });
    const got = await simClient().getOrganizationInvitation(org.id, inv.id);
    expect(JSON.parse(got.raw)).toEqual(sim.store.getInvitation(inv.id));
    expect(got.invitation).toMatchObject({ id: inv.id, organization_id: org.id, status: 'pending' });
  });

  it('pages through the lists', async () => {
    const { organizationIds } = sim.store.seed({ organizations: 3, invitationsPerOrganization: 4 });
    const c = simClient();
    const orgs = await c.listOrganizations({ limit: 500 });
    for (const id of organizationIds) expect(orgs.data.map((o) => o.id)).toContain(id);
    const all = sim.store.truth();
    const first = await c.listInstanceInvitations({ limit: 5, offset: 0 });
    expect(first.totalCount).toBe(all.length);
    expect(first.data).toHaveLength(5);
    const ofOrg = await c.listOrganizationInvitations(organizationIds[0]!, { limit: 500 });
    expect(ofOrg.totalCount).toBe(4);
    expect(new Set(ofOrg.data.map((i) => i.organization_id))).toEqual(new Set([organizationIds[0]]));
  });

  it('reads a deleted organization as not found', async () => {
    const org = sim.store.createOrganization();
    const inv = sim.store.createInvitation(org.id, { emailAddress: 'linus@example.com' });
    sim.store.deleteOrganization(org.id);
    const e = await failure(simClient().getOrganizationInvitation(org.id, inv.id));
    expect(e).toBeInstanceOf(BapiNotFoundError);
    expect(await failure(simClient().getOrganizationInvitation(org.id, 'orginv_2doesnotexist'))).toBeInstanceOf(BapiNotFoundError);
  });

  it('reads a wrong key as fatal', async () => {
    const e = await failure(simClient({ secretKey: 'sk_test_wrong' }).listOrganizations({}));
    expect(e).toBeInstanceOf(BapiFatalError);
    expect(e.status).toBe(401);
  });

  it('reads injected 5xx, hangs and dropped sockets as retryable', async () => {
    const c = simClient({ timeoutMs: 200 });
    sim.setFaults({ errorRate: 1 });
    expect(await failure(c.listOrganizations({}))).toBeInstanceOf(BapiRetryableError);
    sim.setFaults({ errorRate: 0, hangRate: 1 });
    expect((await failure(c.listOrganizations({}))).message).toMatch(/timed out/);
    sim.setFaults({ hangRate: 0, dropRate: 1 });
    const dropped = await failure(c.listOrganizations({}));
    expect(dropped).toBeInstanceOf(BapiRetryableError);
    expect(dropped.status).toBeUndefined();
    expect(dropped.message).not.toMatch(/timed out/);
  });

  it('reads the rate limit as rate limited with a Retry-After', async () => {
    sim.setRateLimit(2, 10_000);
    const c = simClient();
    // Earlier tests' requests may already count against this window.
    const outcomes = await Promise.allSettled([1, 2, 3].map(() => c.listOrganizations({})));
    const e = await failure(Promise.reject((outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult | undefined)?.reason));
    expect(e).toBeInstanceOf(BapiRateLimitedError);
    expect(e.status).toBe(429);
    expect((e as BapiRateLimitedError).retryAfterMs).toBeGreaterThan(0);
  });
});
