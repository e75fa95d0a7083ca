import { createServer, type Server } from 'node:http';
import { createClerkClient } from '@clerk/backend';
import { isClerkAPIResponseError } from '@clerk/backend/errors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMirror, type Mirror } from '../src/index.ts';
import { fixture, tempDir } from './helpers/fixtures.ts';
import { seedMirror } from './helpers/mirror.ts';

// The contract: for the same JSON, the mirror's answer equals what the real SDK builds from BAPI.
const single = fixture<Record<string, unknown>>('organization-invitation.json');
// Same invitation as `single`, a later state; a distinct id keeps both in one mirror.
const fromWebhook = { ...fixture<{ data: Record<string, unknown> }>('webhook-organizationInvitation.accepted.json').data, id: 'orginv_fromwebhook' };
const withNulls = { ...single, id: 'orginv_nulls', public_metadata: null, private_metadata: null, expires_at: null, url: null };
const withoutMetadata = Object.fromEntries(Object.entries({ ...single, id: 'orginv_nometa' }).filter(([k]) => !k.endsWith('_metadata')));
const cases: Record<string, unknown>[] = [single, fromWebhook, withNulls, withoutMetadata];
const bodies = new Map(cases.map((c) => [`/v1/organizations/${c.organization_id}/invitations/${c.id}`, JSON.stringify(c, null, 1)]));
const notFound = JSON.stringify(fixture('bapi-error-404.json'));

const tmp = tempDir();
let server: Server;
let apiUrl: string;
let mirror: Mirror;

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = new URL(req.url!, 'http://x').pathname;
    const body = bodies.get(path);
    if (path.endsWith('/invitations') && req.method === 'GET') {
      const data = cases.filter((c) => path === `/v1/organizations/${c.organization_id}/invitations`);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data, total_count: data.length }));
      return;
    }
    res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' }).end(body ?? notFound);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  apiUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  mirror = createMirror({ path: seedMirror(tmp.path, 'fidelity.db', [...bodies.values()].map((raw) => ({ raw }))), readonly: true });
});

afterAll(async () => {
  mirror.close();
  await new Promise((r) => server.close(r));
  tmp.cleanup();
});

const clerk = () => createClerkClient({ secretKey: 'sk_test_fidelity', apiUrl });
const own = (o: object) => Object.fromEntries(Object.entries(o));

describe('fidelity with @clerk/backend', () => {
  it.each(cases.map((c) => [c.id as string, c]))('%s: same own fields, values, order and raw', async (_id, c) => {
    const params = { organizationId: c.organization_id as string, invitationId: c.id as string };
    const sdk = await clerk().organizations.getOrganizationInvitation(params);
    const ours = await mirror.getOrganizationInvitation(params);
    expect(Object.keys(ours)).toEqual(Object.keys(sdk));
    expect(own(ours)).toStrictEqual(own(sdk));
    expect(ours.raw).toStrictEqual(sdk.raw);
    expect(JSON.stringify(ours)).toBe(JSON.stringify(sdk));
  });

  it('lists the same objects as the SDK', async () => {
    const organizationId = single.organization_id as string;
    const sdk = await clerk().organizations.getOrganizationInvitationList({ organizationId, limit: 500 });
    const ours = await mirror.getOrganizationInvitationList({ organizationId, limit: 500 });
    expect(ours.totalCount).toBe(sdk.totalCount);
    const byId = (l: typeof ours.data) => [...l].sort((a, b) => a.id.localeCompare(b.id)).map(own);
    expect(byId(ours.data)).toStrictEqual(byId(sdk.data));
  });

  it('throws the same error as the SDK on a miss', async () => {
    const params = { organizationId: single.organization_id as string, invitationId: 'orginv_missing' };
    const sdkErr = await clerk().organizations.getOrganizationInvitation(params).catch((e: unknown) => e);
    const ourErr = await mirror.getOrganizationInvitation(params).catch((e: unknown) => e);
    expect(isClerkAPIResponseError(sdkErr) && isClerkAPIResponseError(ourErr)).toBe(true);
    if (!isClerkAPIResponseError(sdkErr) || !isClerkAPIResponseError(ourErr)) return;
    expect(ourErr.constructor).toBe(sdkErr.constructor);
    expect(ourErr.status).toBe(sdkErr.status);
    expect(ourErr.message).toBe(sdkErr.message);
    expect(ourErr.errors.map(own)).toStrictEqual(sdkErr.errors.map(own));
    expect(ourErr.retryAfter).toBe(sdkErr.retryAfter);
  });
});
