import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/http/app.ts';
import { bearerAuth } from '../src/http/auth.ts';
import { fastInvitationRead } from '../src/http/fast-read.ts';
import { createLogger } from '../src/logger.ts';
import { MirrorReader } from '../src/mirror/reader.ts';
import { migrateMirror } from '../src/mirror/migrate.ts';
import { openMirrorDb, type MirrorConnection } from '../src/mirror/open.ts';
import { ReplicaWriter } from '../src/replica/writer.ts';
import { storedStateOf } from '../src/state/codec.ts';
import { PipelineStats } from '../src/stats.ts';
import { invitation, tempDir } from './helpers/fixtures.ts';

const KEY = 'fast-read-key-0123456789abcdef';
const ORG = 'org_fast1';
const LIVE = 'orginv_live1';
const UNICODE = 'orginv_unicode1';
const GONE = 'orginv_gone1';
const tmp = tempDir();
let conn: MirrorConnection;
let reader: MirrorReader;
const apps: FastifyInstance[] = [];
let fastUrl: string;
let slowUrl: string;

beforeAll(async () => {
  conn = openMirrorDb({ path: join(tmp.path, 'mirror.db') });
  migrateMirror(conn);
  new ReplicaWriter(conn).apply([
    storedStateOf(invitation({ id: LIVE, organization_id: ORG })),
    // Non-ASCII text: content-length must count bytes, not characters.
    storedStateOf(invitation({ id: UNICODE, organization_id: ORG, public_metadata: { team: 'Ærø ✓ 💥' } })),
    storedStateOf(invitation({ id: GONE, organization_id: ORG }), { deleted: true }),
  ]);
  reader = new MirrorReader(conn);
  for (const fastPath of [true, false]) {
    const app = await buildApp({ log: createLogger({ level: 'silent' }), stats: new PipelineStats(), readiness: {}, api: { reader, keys: [KEY] }, fastPath });
    apps.push(app);
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    if (fastPath) fastUrl = url;
    else slowUrl = url;
  }
});
afterAll(async () => {
  for (const app of apps) await app.close();
  conn?.sqlite.close();
  tmp.cleanup();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A raw HTTP/1.1 request, so headers and bytes are seen exactly as sent. */
function send(base: string, path: string, { method = 'GET', auth = `Bearer ${KEY}` as string | null, version = undefined as string | undefined } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...(auth === null ? {} : { authorization: auth }), ...(version === undefined ? {} : { 'clerk-api-version': version }) };
    const req = request(`${base}${path}`, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

const path = (org: string, id: string) => `/v1/organizations/${org}/invitations/${id}`;
const cases: [string, string, { method?: string; auth?: string | null; version?: string }][] = [
  ['a live invitation', path(ORG, LIVE), {}],
  ['non-ASCII JSON', path(ORG, UNICODE), {}],
  ['a lower-case scheme with extra spaces', path(ORG, LIVE), { auth: `bearer   ${KEY}` }],
  ['a Clerk-API-Version', path(ORG, LIVE), { version: '2025-11-10' }],
  ['a malformed Clerk-API-Version', path(ORG, LIVE), { version: '2025-13-45' }],
  ['a tombstone', path(ORG, GONE), {}],
  ['another organization', path('org_other1', LIVE), {}],
  ['a miss', path(ORG, 'orginv_nothere'), {}],
  ['a wrong key', path(ORG, LIVE), { auth: 'Bearer nope' }],
  ['no key', path(ORG, LIVE), { auth: null }],
  ['HEAD', path(ORG, LIVE), { method: 'HEAD' }],
  ['a query string', `${path(ORG, LIVE)}?x=1`, {}],
  ['a trailing slash', `${path(ORG, LIVE)}/`, {}],
  ['a percent-encoded id', path(ORG, 'orginv_%6Cive1'), {}],
  ['POST', path(ORG, LIVE), { method: 'POST' }],
];

describe('fast single-invitation read', () => {
  it.each(cases)('answers %s exactly as the Fastify route does', async (_name, p, opts) => {
    const [fast, slow] = [await send(fastUrl, p, opts), await send(slowUrl, p, opts)];
    const strip = (h: Answer['headers']) => Object.fromEntries(Object.entries(h).filter(([k]) => k !== 'date'));
    expect(fast.status).toBe(slow.status);
    expect(strip(fast.headers)).toStrictEqual(strip(slow.headers));
    // Every error body carries a fresh trace id; everything else must be the same bytes.
    const untraced = (b: Buffer) => b.toString('latin1').replace(/"clerk_trace_id":"[0-9a-f]{32}"/, '"clerk_trace_id":"…"');
    expect(untraced(fast.body)).toBe(untraced(slow.body));
  });

  it('takes only the plain success and leaves every other request to Fastify', async () => {
    let closing = false;
    const fast = fastInvitationRead({ reader, auth: bearerAuth([KEY]), isClosing: () => closing });
    // Stands in for Fastify: anything the fast path declines is answered 599 here.
    const server: Server = createServer((req, res) => {
      if (!fast(req, res)) res.writeHead(599).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const taken: string[] = [];
      for (const [name, p, opts] of cases) if ((await send(base, p, opts)).status !== 599) taken.push(name);
      expect(taken).toStrictEqual(['a live invitation', 'non-ASCII JSON', 'a lower-case scheme with extra spaces', 'a Clerk-API-Version']);
      const hit = await send(base, path(ORG, LIVE));
      expect(hit.body.toString('utf8')).toBe(reader.findRaw(ORG, LIVE));
      closing = true;
      expect((await send(base, path(ORG, LIVE))).status).toBe(599);
      closing = false;
      // A lookup that throws (here: the connection is closed) is left to Fastify, which
      // answers 500, instead of escaping the 'request' listener and ending the process.
      const other = openMirrorDb({ path: join(tmp.path, 'mirror.db'), readonly: true });
      const broken = fastInvitationRead({ reader: new MirrorReader(other), auth: bearerAuth([KEY]), isClosing: () => false });
      other.sqlite.close();
      const fake = { method: 'GET', url: path(ORG, LIVE), headers: { authorization: `Bearer ${KEY}` } };
      expect(broken(fake as never, {} as never)).toBe(false);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
