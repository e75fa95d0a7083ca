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
  h = await startHarness({ name: 'bapi-answers', dir: tmp.path });
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

describe('organizations: a list or a read answers 404 where BAPI does', () => {
  const UNKNOWN = 'org_2neverExisted00000000000000';
  /** What the SDK gets from Clerk, from the read API and from the library, for one read. */
  async function threeWays(call: (api: Pick<ReturnType<typeof sdk>, 'getOrganizationInvitationList' | 'getOrganizationInvitation'>) => Promise<unknown>) {
    const wrap = (p: Promise<unknown>) => outcome(async () => {
      const v = (await p) as { data?: object[]; totalCount?: number } & object;
      return 'data' in v ? (v as { data: object[]; totalCount: number }) : { data: [{ ...v }], totalCount: 1 };
    });
    const library = mirrorOver(h.service.mirror!) as unknown as Parameters<typeof call>[0];
    return { clerk: await wrap(call(sdk(h.sim.url))), api: await wrap(call(sdk(h.service.url))), library: await wrap(call(library)) };
  }
  const list = (organizationId: string) => (api: Pick<ReturnType<typeof sdk>, 'getOrganizationInvitationList'>) => api.getOrganizationInvitationList({ organizationId });
  const ORGANIZATION_NOT_FOUND = { status: 404, message: 'Not Found', errors: [{ code: 'resource_not_found', message: 'not found', longMessage: 'Given organization not found.' }] };

  it('before any listing, an unknown organization lists empty (what every install did before organizations were kept)', async () => {
    const got = await threeWays(list(UNKNOWN));
    expect(got.clerk).toMatchObject({ status: 404 });
    expect(got.api).toStrictEqual({ ok: { data: [], totalCount: 0 } });
    expect(got.library).toStrictEqual({ ok: { data: [], totalCount: 0 } });
  });

  it('after a backfill: 404 for an unknown or deleted organization, 200 empty for one without invitations, in lists and reads alike', async () => {
    const empty = h.sim.store.createOrganization({ name: 'Empty before' }).id;
    const doomed = h.sim.store.createOrganization({ name: 'Doomed' }).id;
    const doomedInvitation = h.sim.store.createInvitation(doomed, { emailAddress: 'doomed@example.com' }).id;
    await settle(h);
    const summary = await h.backfill();
    expect(summary).toMatchObject({ status: 'completed', organizations: { complete: true } });
    await settle(h);
    const later = h.sim.store.createOrganization({ name: 'Announced', webhook: true }).id;
    h.sim.store.deleteOrganization(doomed);
    await settle(h);

    for (const id of [UNKNOWN, doomed]) {
      const got = await threeWays(list(id));
      expect(got.clerk, id).toMatchObject(ORGANIZATION_NOT_FOUND);
      expect(got.api, id).toStrictEqual(got.clerk);
      expect(got.library, id).toStrictEqual(got.clerk);
    }
    for (const id of [empty, later]) {
      const got = await threeWays(list(id));
      expect(got.clerk, id).toStrictEqual({ ok: { data: [], totalCount: 0 } });
      expect(got.api, id).toStrictEqual(got.clerk);
      expect(got.library, id).toStrictEqual(got.clerk);
    }
    // A read of an invitation of a deleted organization says so, as BAPI does.
    const read = await threeWays((api) => api.getOrganizationInvitation({ organizationId: doomed, invitationId: doomedInvitation }));
    expect(read.clerk).toMatchObject(ORGANIZATION_NOT_FOUND);
    expect(read.api).toStrictEqual(read.clerk);
    expect(read.library).toStrictEqual(read.clerk);
    // An unknown invitation of an existing organization is the invitation's 404, not the organization's.
    const miss = await threeWays((api) => api.getOrganizationInvitation({ organizationId: org, invitationId: 'orginv_2neverExisted000000000000' }));
    expect(miss.clerk).toMatchObject({ status: 404, errors: [{ longMessage: 'Resource not found' }] });
    expect(miss.api).toStrictEqual(miss.clerk);
    expect(miss.library).toStrictEqual(miss.clerk);
  });

  it('an organization whose created event was lost is known again by its first invitation, or by the next reconciliation', async () => {
    const lost = h.sim.store.createOrganization({ name: 'Lost event' }).id;
    // Nothing told the mirror: until something does, it answers what it knows.
    expect((await threeWays(list(lost))).library).toMatchObject(ORGANIZATION_NOT_FOUND);
    const report = await h.reconcile();
    expect(report.organizations).toMatchObject({ missing: 1, gone: 0 });
    await settle(h);
    expect((await threeWays(list(lost))).library).toStrictEqual({ ok: { data: [], totalCount: 0 } });

    const quiet = h.sim.store.createOrganization({ name: 'Quiet' }).id;
    h.sim.store.createInvitation(quiet, { emailAddress: 'first@example.com' });
    await settle(h);
    const got = await threeWays(list(quiet));
    expect(got.library).toMatchObject({ ok: { totalCount: 1 } });
    expect(got.api).toStrictEqual(got.clerk);
    expect(got.library).toStrictEqual(got.clerk);
  });

  it('a reconciliation tombstones an organization deleted without an event, and the invitations with it', async () => {
    const silent = h.sim.store.createOrganization({ name: 'Silently deleted', webhook: true }).id;
    const inv = h.sim.store.createInvitation(silent, { emailAddress: 'silent@example.com' }).id;
    await settle(h);
    expect((await threeWays(list(silent))).library).toMatchObject({ ok: { totalCount: 1 } });
    h.sim.store.deleteOrganization(silent, { webhook: false });
    const dry = await h.reconcile({ dryRun: true });
    expect(dry.organizations).toMatchObject({ gone: 1 });
    const report = await h.reconcile();
    expect(report.organizations).toMatchObject({ gone: 1 });
    expect(report.drift.gone.repaired).toBe(1);
    await settle(h);
    expect((await threeWays(list(silent))).library).toMatchObject(ORGANIZATION_NOT_FOUND);
    const read = await threeWays((api) => api.getOrganizationInvitation({ organizationId: silent, invitationId: inv }));
    expect(read.library).toMatchObject(ORGANIZATION_NOT_FOUND);
    expect(read.api).toStrictEqual(read.clerk);
  });
});
