import { createClerkClient } from '@clerk/backend';
import { isClerkAPIResponseError } from '@clerk/backend/errors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mirrorOver, type GetOrganizationInvitationListParams } from '../src/mirror/mirror.ts';
import { tempDir } from './helpers/fixtures.ts';
import { SECRET_KEY, settle, startHarness, type Harness } from './helpers/pipeline.ts';

// BAPI's answers beyond the plain success, pinned three ways: the real @clerk/backend SDK
// pointed at Clerk (the simulator) and at the mirror's read API, and the library, which must
// answer what the SDK would.
const tmp = tempDir();
let h: Harness;
let org: string;
const emails: string[] = [];

beforeAll(async () => {
  h = await startHarness({ redisDb: 11, dir: tmp.path });
  org = h.sim.store.createOrganization({ name: 'Answers' }).id;
  for (let i = 0; i < 12; i++) {
    const inv = h.sim.store.createInvitation(org, { emailAddress: `answer${String.fromCharCode(108 - i)}${i}@example.com` });
    emails.push(inv.email_address);
    if (i % 3 === 1) h.sim.store.acceptInvitation(inv.id);
    if (i % 3 === 2) h.sim.store.revokeInvitation(inv.id);
  }
  await settle(h);
});
afterAll(async () => {
  await h?.stop();
  tmp.cleanup();
});

const sdk = (apiUrl: string) => createClerkClient({ secretKey: SECRET_KEY, apiUrl }).organizations;

/**
 * What a call gave: its value (objects as their own fields: the SDK's bundle and the library
 * may build them from different copies of one class), or the ClerkAPIResponseError's status
 * and errors (trace id aside).
 */
async function outcome(call: () => Promise<{ data: object[]; totalCount: number }>): Promise<unknown> {
  try {
    const { data, totalCount } = await call();
    return { ok: { data: data.map((o) => ({ ...o })), totalCount } };
  } catch (err) {
    if (!isClerkAPIResponseError(err)) throw err;
    expect(err.clerkTraceId).toMatch(/^[0-9a-f]{32}$/);
    return { status: err.status, message: err.message, errors: err.errors.map((e) => ({ ...e })) };
  }
}

describe('the organization invitation list, every parameter as the SDK sends it', () => {
  const statuses = [undefined, 'pending', ['accepted', 'revoked'], []] as const;
  const orders = [undefined, '', 'created_at', '+created_at', '-created_at', 'email_address', '-email_address', 'name'];
  const limits = [undefined, 0, 1, 3, 500, 501];
  const offsets = [undefined, 0, 2, 1000];
  const emailFilters = () => [undefined, emails[4]!, [emails[1]!, emails[2]!], emails[7]!.toUpperCase(), 'nobody@example.com'];

  it('answers like BAPI through the read API and through the library, errors included', async () => {
    const library = mirrorOver(h.service.mirror!);
    let combinations = 0;
    let errors = 0;
    let i = 0;
    for (const orderBy of orders) {
      for (const limit of limits) {
        for (const offset of offsets) {
          const status = statuses[i % statuses.length];
          const emailAddress = emailFilters()[i % 5];
          i++;
          const params = { organizationId: org, orderBy, limit, offset, status, emailAddress } as GetOrganizationInvitationListParams;
          const truth = await outcome(() => sdk(h.sim.url).getOrganizationInvitationList(params as never));
          expect(await outcome(() => sdk(h.service.url).getOrganizationInvitationList(params as never)), JSON.stringify(params)).toStrictEqual(truth);
          expect(await outcome(() => library.getOrganizationInvitationList(params as never)), JSON.stringify(params)).toStrictEqual(truth);
          combinations++;
          if (!('ok' in (truth as object))) errors++;
        }
      }
    }
    // Both kinds were compared: refusals (order_by=name, limit=501) and answers.
    expect(errors).toBeGreaterThan(20);
    expect(combinations - errors).toBeGreaterThan(100);
  });

  it('filters by email_address with the index, exactly and case-insensitively', async () => {
    const library = mirrorOver(h.service.mirror!);
    const one = await library.getOrganizationInvitationList({ organizationId: org, emailAddress: emails[3]!.toUpperCase() });
    expect(one.data.map((d) => d.emailAddress)).toEqual([emails[3]]);
    const plan = h.service.mirror!.sqlite
      .prepare("EXPLAIN QUERY PLAN SELECT raw FROM organization_invitations WHERE organization_id = ? AND email_address IN (?) AND deleted_at IS NULL")
      .all(org, emails[3]) as { detail: string }[];
    expect(plan.map((p) => p.detail).join(' ')).toMatch(/organization_invitations_org_email_idx/);
  });

  it('serves the deprecated pending list as BAPI does', async () => {
    const get = (base: string, q: string) =>
      fetch(`${base}/v1/organizations/${org}/invitations/pending${q}`, { headers: { authorization: `Bearer ${SECRET_KEY}` } }).then(async (r) => ({ status: r.status, body: await r.json() }));
    for (const q of ['', '?limit=2', '?limit=2&offset=1', '?offset=100', '?limit=0', '?status=accepted', '?status=bogus']) {
      const truth = await get(h.sim.url, q);
      const ours = await get(h.service.url, q);
      delete (truth.body as { clerk_trace_id?: string }).clerk_trace_id;
      delete (ours.body as { clerk_trace_id?: string }).clerk_trace_id;
      expect(ours, q).toStrictEqual(truth);
    }
    const all = await get(h.service.url, '?limit=100');
    expect((all.body as { total_count: number }).total_count).toBe(h.sim.store.truth().filter((i) => i.organization_id === org && i.status === 'pending').length);
  });
});

describe("error bodies from Clerk's catalogue", () => {
  const path = () => `/v1/organizations/${org}/invitations`;
  type Case = [name: string, p: () => string, headers: Record<string, string | null>, status: number, code: string, longMessage: string | RegExp, param?: string];
  const cases: Case[] = [
    ['no Authorization header', path, { authorization: null }, 401, 'authorization_header_format_invalid', "Invalid Authorization header format. Must be 'Bearer <YOUR_API_KEY>'"],
    ['another scheme', path, { authorization: `Token ${SECRET_KEY}` }, 401, 'authorization_header_format_invalid', "Invalid Authorization header format. Must be 'Bearer <YOUR_API_KEY>'"],
    ['a wrong key', path, { authorization: 'Bearer sk_test_wrong' }, 401, 'clerk_key_invalid', 'The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct.'],
    ['a status that is none', () => `${path()}?status=sent`, {}, 422, 'form_param_value_invalid', 'sent does not match one of the allowed values for parameter status', 'status'],
    ['an order_by that is none', () => `${path()}?order_by=-name`, {}, 422, 'form_param_value_invalid', '-name does not match one of the allowed values for parameter order_by', 'order_by'],
    ['limit of the wrong type', () => `${path()}?limit=ten`, {}, 422, 'form_param_type_invalid', '`limit` must be a `integer`.', 'limit'],
    ['offset given twice', () => `${path()}?offset=1&offset=2`, {}, 422, 'form_param_duplicate', 'offset included multiple times. There should only be one.', 'offset'],
    ['a malformed Clerk-API-Version', path, { 'clerk-api-version': 'v2' }, 400, 'api_version_invalid', /^Invalid Clerk API version: /],
    ['a missing invitation', () => `${path()}/orginv_missing0`, {}, 404, 'resource_not_found', 'Resource not found'],
  ];

  it.each(cases)('%s: the same status, code, messages and meta as BAPI, with a clerk_trace_id', async (_name, p, headers, status, code, longMessage, param) => {
    const answer = async (base: string) => {
      const sent = Object.entries({ authorization: `Bearer ${SECRET_KEY}`, ...headers }).filter((e): e is [string, string] => e[1] !== null);
      const res = await fetch(`${base}${p()}`, { headers: Object.fromEntries(sent) });
      const body = (await res.json()) as { errors: { code: string; message: string; long_message: string; meta?: { param_name?: string } }[]; clerk_trace_id?: string };
      expect(body.clerk_trace_id).toMatch(/^[0-9a-f]{32}$/);
      return { status: res.status, type: res.headers.get('content-type'), errors: body.errors };
    };
    const ours = await answer(h.service.url);
    expect(ours).toStrictEqual(await answer(h.sim.url));
    expect(ours.status).toBe(status);
    expect(ours.type).toBe('application/json');
    expect(ours.errors[0]!.code).toBe(code);
    expect(ours.errors[0]!.long_message).toMatch(typeof longMessage === 'string' ? new RegExp(`^${longMessage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) : longMessage);
    expect(ours.errors[0]!.meta?.param_name).toBe(param);
  });

  it('accepts a well-formed Clerk-API-Version (the SDK sends one on every call)', async () => {
    const res = await fetch(`${h.service.url}${path()}`, { headers: { authorization: `Bearer ${SECRET_KEY}`, 'clerk-api-version': '2025-11-10' } });
    expect(res.status).toBe(200);
  });
});

describe('a path the mirror does not serve', () => {
  it('answers 501 not_mirrored, so a caller can tell "ask Clerk" from "does not exist"', async () => {
    for (const [method, p] of [
      ['GET', '/v1/users'],
      ['GET', `/v1/organizations/${org}`],
      ['POST', `/v1/organizations/${org}/invitations`],
    ] as const) {
      const res = await fetch(`${h.service.url}${p}`, { method, headers: { authorization: `Bearer ${SECRET_KEY}`, 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined });
      expect(res.status, `${method} ${p}`).toBe(501);
      const body = (await res.json()) as { errors: { code: string; long_message: string }[]; clerk_trace_id: string };
      expect(body.errors[0]!.code).toBe('not_mirrored');
      expect(body.errors[0]!.long_message).toContain(`${method} ${p}`);
      expect(body.clerk_trace_id).toMatch(/^[0-9a-f]{32}$/);
    }
    // Through the SDK: an error a caller does not mistake for a missing resource.
    const err = await sdk(h.service.url)
      .createOrganizationInvitation({ organizationId: org, emailAddress: 'new@example.com', role: 'org:member' })
      .catch((e: unknown) => e);
    expect(isClerkAPIResponseError(err) && err.status === 501 && err.errors[0]?.code === 'not_mirrored').toBe(true);
  });
});
