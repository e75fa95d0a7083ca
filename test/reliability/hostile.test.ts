// Scenario: hostile input against the running service (all roles, one process). At least
// 10,000 generated requests to POST /webhooks/clerk, each of a kind with a documented answer;
// the process must stay up with flat memory and nothing may reach the queue. Then the read
// API: bearer near-misses get 401, traversal and injection in ids get 404 or 422.
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUEUE_PREFIX, SYNC_QUEUE } from '../../src/queue/names.ts';
import type { Simulator } from '../../src/simulator/index.ts';
import { httpClient, svixHeaders, type RawRequest } from './helpers/http.ts';
import { spawnService, startRedis, type RedisProc, type ServiceProc } from './helpers/procs.ts';
import { credentials, queueOf, recordResult, scale, scanLogs, releaseScenario, scratchDir, startSim, serviceEnv } from './helpers/scenario.ts';

const tmp = scratchDir('hostile');
const creds = credentials();
const otherSecret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
let redis: RedisProc;
let sim: Simulator;
let service: ServiceProc;
let q: ReturnType<typeof queueOf>;

beforeAll(async () => {
  redis = await startRedis(join(tmp.path, 'redis'), { fsync: 'everysec' });
  sim = await startSim(creds);
  service = await spawnService({
    ...serviceEnv(creds, sim, redis, join(tmp.path, 'mirror.db')),
    LOG_LEVEL: 'debug',
  });
  q = queueOf(redis.url);
}, 90_000);

afterAll(() => releaseScenario(tmp, { q, services: [service], sim, redis }));

const ORG = 'org_2hostileOrg0001';
const INV = 'orginv_2hostileInv0001';
const envelope = (data: unknown, type = 'organizationInvitation.created') => JSON.stringify({ data, object: 'event', type, timestamp: Date.now() });
const goodBody = () => envelope({ id: INV, organization_id: ORG, email_address: 'victim@example.com', updated_at: Date.now() });

/** Nested `[[[…]]]` or `{"a":{"a":…}}` of the given depth. */
function nested(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array' ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

const BAD_IDS = [
  '../../../etc/passwd',
  'orginv_..%2F..%2Fetc',
  "orginv_1' OR '1'='1",
  'orginv_1; DROP TABLE organization_invitations; --',
  'orginv_\u0000nul',
  'orginv_' + 'x'.repeat(5000),
  'orginv_ünïcödé',
  '',
  'org_',
  'user_2abc',
];

interface Case {
  kind: string;
  expect: number;
  make(i: number): RawRequest;
}

/** Every kind of bad request, each with the answer the route documents. */
const CASES: Case[] = [
  { kind: 'no svix headers', expect: 400, make: () => ({ path: '/webhooks/clerk', headers: { 'content-type': 'application/json' }, body: goodBody() }) },
  ...(['svix-id', 'svix-timestamp', 'svix-signature'] as const).map((h) => ({
    kind: `missing ${h}`,
    expect: 400,
    make: () => {
      const body = goodBody();
      const headers: Record<string, string> = svixHeaders(creds.signingSecret, body);
      delete headers[h];
      return { path: '/webhooks/clerk', headers, body };
    },
  })),
  {
    kind: 'garbage signature',
    expect: 400,
    make: (i) => {
      const body = goodBody();
      const sigs = ['v1,', 'v1,AAAA', 'v2,' + Buffer.alloc(32, i).toString('base64'), 'nonsense', 'v1,' + Buffer.alloc(32, i).toString('base64'), 'v1 v1 v1'];
      return { path: '/webhooks/clerk', headers: { ...svixHeaders(creds.signingSecret, body), 'svix-signature': sigs[i % sigs.length]! }, body };
    },
  },
  {
    kind: 'bad timestamp header',
    expect: 400,
    make: (i) => {
      const body = goodBody();
      return { path: '/webhooks/clerk', headers: { ...svixHeaders(creds.signingSecret, body), 'svix-timestamp': ['abc', '-1', '1e99', '', ' '][i % 5]! || 'x' }, body };
    },
  },
  {
    kind: 'oversized header',
    expect: 400,
    make: () => {
      const body = goodBody();
      return { path: '/webhooks/clerk', headers: { ...svixHeaders(creds.signingSecret, body), 'svix-id': 'm'.repeat(5000) }, body };
    },
  },
  {
    kind: 'replayed old timestamp (valid signature, 10 min ago)',
    expect: 400,
    make: () => {
      const body = goodBody();
      return { path: '/webhooks/clerk', headers: svixHeaders(creds.signingSecret, body, { at: new Date(Date.now() - 10 * 60_000) }), body };
    },
  },
  {
    kind: 'timestamp 10 min in the future (valid signature)',
    expect: 400,
    make: () => {
      const body = goodBody();
      return { path: '/webhooks/clerk', headers: svixHeaders(creds.signingSecret, body, { at: new Date(Date.now() + 10 * 60_000) }), body };
    },
  },
  {
    kind: 'signed with another secret',
    expect: 400,
    make: () => {
      const body = goodBody();
      return { path: '/webhooks/clerk', headers: svixHeaders(otherSecret, body), body };
    },
  },
  {
    kind: 'body cut short (signature of the whole body)',
    expect: 400,
    make: (i) => {
      const body = goodBody();
      return { path: '/webhooks/clerk', headers: svixHeaders(creds.signingSecret, body), body: body.slice(0, 1 + (i % (body.length - 1))) };
    },
  },
  {
    kind: 'body with a byte changed',
    expect: 400,
    make: (i) => {
      const body = goodBody();
      const at = i % body.length;
      const tampered = body.slice(0, at) + (body[at] === 'x' ? 'y' : 'x') + body.slice(at + 1);
      return { path: '/webhooks/clerk', headers: svixHeaders(creds.signingSecret, body), body: tampered };
    },
  },
  {
    kind: 'oversized body, signed (> 256 KiB)',
    expect: 413,
    make: () => {
      const body = envelope({ id: INV, organization_id: ORG, padding: 'p'.repeat(300 * 1024) });
      return { path: '/webhooks/clerk', headers: svixHeaders(creds.signingSecret, body), body };
    },
  },
  {
    kind: 'oversized body, unsigned',
    expect: 413,
    make: () => ({ path: '/webhooks/clerk', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(257 * 1024) }),
  },
  ...['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/jsonp', 'text/json'].map((ct) => ({
    kind: `content type ${ct}`,
    expect: 415,
    make: () => {
      const body = goodBody();
      return { path: '/webhooks/clerk', headers: { ...svixHeaders(creds.signingSecret, body), 'content-type': ct }, body };
    },
  })),
  {
    kind: 'invalid UTF-8, validly signed',
    expect: 400,
    make: () => {
      const body = Buffer.concat([Buffer.from('{"type":"organizationInvitation.created","data":{"id":"'), Buffer.from([0xc3, 0x28, 0xff, 0xfe]), Buffer.from('"}}')]);
      return { path: '/webhooks/clerk', headers: svixHeaders(creds.signingSecret, body), body };
    },
  },
  {
    kind: 'invalid UTF-8, unsigned',
    expect: 400,
    make: () => ({ path: '/webhooks/clerk', headers: { ...svixHeaders(otherSecret, 'x'), 'content-type': 'application/json' }, body: Buffer.from([0xff, 0xfe, 0xfd, 0x80, 0x81]) }),
  },
  {
    kind: 'deeply nested JSON, validly signed',
    expect: 400,
    make: (i) => {
      // 200,000 and 240,000 bytes: deep, yet under the 256 KiB limit so they reach the parser.
      const body = nested(i % 2 ? 100_000 : 40_000, i % 2 ? 'array' : 'object');
      return { path: '/webhooks/clerk', headers: svixHeaders(creds.signingSecret, body), body };
    },
  },
  {
    kind: 'deeply nested data in a signed event',
    expect: 400,
    make: () => {
      const body = `{"type":"organizationInvitation.created","data":${nested(60_000, 'array')}}`;
      return { path: '/webhooks/clerk', headers: svixHeaders(creds.signingSecret, body), body };
    },
  },
  {
    kind: 'deeply nested JSON, unsigned',
    expect: 400,
    make: () => ({ path: '/webhooks/clerk', headers: { 'content-type': 'application/json' }, body: nested(100_000, 'array') }),
  },
  {
    kind: 'valid signature over an invalid shape',
    expect: 400,
    make: (i) => {
      const shapes = [
        '[]',
        '42',
        'null',
        '"organizationInvitation.created"',
        '{}',
        '{"type":5}',
        '{"type":null,"data":{}}',
        envelope(null),
        envelope([]),
        envelope('orginv_x'),
        envelope({ id: INV }),
        envelope({ organization_id: ORG }),
        envelope({ id: INV, organization_id: ORG, updated_at: -1 }),
        envelope({ id: INV, organization_id: ORG, updated_at: 'yesterday' }),
        envelope({ id: INV, organization_id: ORG, updated_at: 1.5 }),
        ...BAD_IDS.map((id) => envelope({ id, organization_id: ORG })),
        ...BAD_IDS.map((id) => envelope({ id: INV, organization_id: id })),
        '{"type":"organizationInvitation.created","data":{"__proto__":{"id":"orginv_x","organization_id":"org_x"}}}',
        '{"type":"organizationInvitation.accepted","data":{"id":"orginv_a","organization_id":"org_a"',
        '{"type":"organizationInvitation.revoked",}',
        '',
      ];
      const body = shapes[i % shapes.length]!;
      return { path: '/webhooks/clerk', headers: svixHeaders(creds.signingSecret, body), body };
    },
  },
];

describe('hostile input', () => {
  const N = scale(10_000, 50_000);
  const sent: Record<string, number> = {};
  const wrong: { kind: string; expected: number; got: number | string; body?: string }[] = [];

  async function barrage(count: number, offset: number) {
    const client = httpClient(service.url, { sockets: 16 });
    const batch = 500;
    for (let start = 0; start < count; start += batch) {
      const kinds: Case[] = [];
      const reqs: RawRequest[] = [];
      for (let i = start; i < Math.min(count, start + batch); i++) {
        const c = CASES[(i + offset) % CASES.length]!;
        kinds.push(c);
        reqs.push(c.make(i + offset));
      }
      const answers = await client.all(reqs, 16);
      answers.forEach((a, j) => {
        const c = kinds[j]!;
        sent[c.kind] = (sent[c.kind] ?? 0) + 1;
        const got = a instanceof Error ? a.message : a.status;
        if (got !== c.expect) wrong.push({ kind: c.kind, expected: c.expect, got, body: a instanceof Error ? undefined : a.body.slice(0, 200) });
      });
    }
    client.close();
  }

  it(`${N} bad webhook requests: documented 4xx each, process up, memory flat, queue empty`, { timeout: scale(240_000, 900_000) }, async () => {
    const pid = service.pid();
    const started = Date.now();
    // Warm-up: JIT, pools and caches reach their working size before the baseline is taken.
    await barrage(1000, 0);
    await sleep(500);
    const rssBefore = service.rss();
    await barrage(N, 1000);
    // Connection-level abuse: truncated requests and garbage that never become an answer.
    for (let i = 0; i < 50; i++) {
      await new Promise<void>((resolve) => {
        const s = connect(service.port, '127.0.0.1', () => {
          s.write(
            i % 2
              ? 'POST /webhooks/clerk HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"type":'
              : '\x16\x03\x01\x00\xa5garbage not http\r\n\r\n',
          );
          setTimeout(() => s.destroy(), 20);
        });
        s.on('close', () => resolve());
        s.on('error', () => resolve());
      });
    }
    await sleep(1000);
    const rssAfter = service.rss();
    const health = await fetch(`${service.url}/healthz`);
    const counts = await q.queue.getJobCounts();
    const r = new Redis(redis.url);
    const jobIdCounter = await r.get(`${QUEUE_PREFIX}:${SYNC_QUEUE}:id`);
    const jobKeys = (await r.keys(`${QUEUE_PREFIX}:${SYNC_QUEUE}:*`)).filter((k) => /:\d+$/.test(k) || k.includes(':de:'));
    await r.quit();
    const total = Object.values(sent).reduce((a, b) => a + b, 0);
    const growth = rssAfter - rssBefore;
    const logs = scanLogs(service.output(), creds);
    recordResult('hostile-webhooks', {
      requests: total + 1000,
      measuredRequests: total,
      kinds: CASES.length,
      perKind: sent,
      wrongAnswers: wrong.length,
      wrongByKind: wrong.reduce<Record<string, number>>((acc, w) => ((acc[`${w.kind} -> ${w.got}`] = (acc[`${w.kind} -> ${w.got}`] ?? 0) + 1), acc), {}),
      wrongExamples: wrong.slice(0, 10),
      ms: Date.now() - started,
      rssBeforeMiB: +(rssBefore / 2 ** 20).toFixed(1),
      rssAfterMiB: +(rssAfter / 2 ** 20).toFixed(1),
      rssGrowthPct: +((growth / rssBefore) * 100).toFixed(1),
      processUp: service.alive() && service.pid() === pid,
      jobCounts: counts,
      jobIdCounter,
      jobKeys: jobKeys.length,
      logBytes: logs.bytes,
      logSecretHits: logs.secrets,
      logEmails: logs.emails,
    });
    expect(total).toBeGreaterThanOrEqual(10_000);
    expect(wrong).toEqual([]);
    expect(service.alive()).toBe(true);
    expect(service.pid()).toBe(pid);
    expect(health.status).toBe(200);
    // Flat: at most 25% (and at most 48 MiB) above the warmed-up baseline.
    expect(growth).toBeLessThanOrEqual(Math.min(rssBefore * 0.25, 48 * 2 ** 20));
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(0);
    expect(jobIdCounter).toBeNull();
    expect(jobKeys).toEqual([]);
    expect(logs.secrets).toEqual([]);
    expect(logs.emails).toEqual([]);
  });

  const k = () => creds.apiKey;
  const ENC = encodeURIComponent;

  it('read API: missing, wrong and near-miss bearers get 401 on every path, before any routing', { timeout: 60_000 }, async () => {
    const client = httpClient(service.url, { sockets: 8 });
    const paths = [
      `/v1/organizations/${ORG}/invitations/${INV}`,
      `/v1/organizations/${ORG}/invitations`,
      `/v1/organizations/${ORG}/invitations?limit=abc`,
      `/v1/organizations/${ORG}/invitations/orginv_${'x'.repeat(5000)}`,
      `/v1/organizations/${ORG}/invitations/%`,
      '/v1/organizations',
      '/v1/anything',
    ];
    const key = k();
    const s = creds.secretKey;
    const flip = (t: string, at: number) => t.slice(0, at) + (t[at] === 'A' ? 'B' : 'A') + t.slice(at + 1);
    const badAuth: (string | undefined)[] = [
      undefined,
      '',
      'Bearer',
      'Bearer ',
      `Bearer ${key.slice(0, -1)}`,
      `Bearer ${key}x`,
      `Bearer ${flip(key, key.length - 1)}`,
      `Bearer ${flip(key, 0)}`,
      `Bearer ${key.toUpperCase()}`,
      `Bearer ${s.slice(0, -1)}`,
      `Bearer ${s}0`,
      `Bearer ${flip(s, 12)}`,
      `Basic ${Buffer.from(`${key}:`).toString('base64')}`,
      `Basic ${key}`,
      key,
      `Token ${key}`,
      `Bearer ${key} ${key}`,
      `Bearer ${key},${key}`,
      `Bearer "${key}"`,
      `Bearer\t${key}x`,
      `Bearer ${creds.signingSecret}`,
      `Bearer sk_live_${'A'.repeat(40)}`,
      `Bearer ${'x'.repeat(10_000)}`,
    ];
    const wrongAnswers: { path: string; auth: string | undefined; got: number }[] = [];
    let checks = 0;
    for (const path of paths) {
      for (const auth of badAuth) {
        const res = await client.send({ method: 'GET', path, headers: auth === undefined ? {} : { authorization: auth } });
        checks++;
        if (res.status !== 401 || !res.body.includes('"errors"')) wrongAnswers.push({ path: path.slice(0, 80), auth: auth?.slice(0, 30), got: res.status });
      }
    }
    // The right keys do get through (so the 401s above are the bearer check, not a dead route).
    const list = await client.send({ method: 'GET', path: `/v1/organizations/${ORG}/invitations`, headers: { authorization: `Bearer ${key}` } });
    const bySecretKey = await client.send({ method: 'GET', path: `/v1/organizations/${ORG}/invitations/${INV}`, headers: { authorization: `Bearer ${s}` } });
    client.close();
    const logs = scanLogs(service.output(), creds);
    recordResult('hostile-read-api-auth', {
      checks,
      wrongAnswers: wrongAnswers.length,
      wrongAnswersByPath: wrongAnswers.reduce<Record<string, number>>((acc, w) => ((acc[`${w.path} -> ${w.got}`] = (acc[`${w.path} -> ${w.got}`] ?? 0) + 1), acc), {}),
      goodKeyListStatus: list.status,
      secretKeyGetStatus: bySecretKey.status,
      logSecretHits: logs.secrets,
      logEmails: logs.emails,
    });
    expect(wrongAnswers).toEqual([]);
    expect(list.status).toBe(200);
    expect(JSON.parse(list.body)).toEqual({ data: [], total_count: 0 });
    expect(bySecretKey.status).toBe(404);
    expect(logs.secrets).toEqual([]);
    expect(logs.emails).toEqual([]);
  });

  it('read API: traversal and injection attempts in ids and parameters get 404 or 422 (Clerk error JSON)', { timeout: 60_000 }, async () => {
    const client = httpClient(service.url, { sockets: 8 });
    const good = { authorization: `Bearer ${k()}` };
    const idPaths = [
      ...BAD_IDS.filter(Boolean).flatMap((id) => [`/v1/organizations/${ORG}/invitations/${ENC(id)}`, `/v1/organizations/${ENC(id)}/invitations/${INV}`, `/v1/organizations/${ENC(id)}/invitations`]),
      `/v1/organizations/${ORG}/invitations/../../../../etc/passwd`,
      `/v1/organizations/${ORG}/invitations/..%2f..%2f..%2fetc%2fpasswd`,
      `/v1/organizations/${ORG}/invitations/%2e%2e/%2e%2e/secret`,
      `/v1/organizations/..;/invitations/${INV}`,
      `/v1/organizations/${ORG}/invitations/${INV}%00.json`,
      `/v1/organizations/${ORG}/invitations/${INV}/../../../${ORG}/invitations`,
      `/v1/organizations/${ORG}%27%20OR%201%3D1--/invitations`,
      `/v1/organizations/${ORG}/invitations/*`,
      `/v1/organizations/${ORG}/invitations/%`,
      `/v1/organizations/${ORG}/invitations/%zz`,
    ];
    const listQueries = [
      'limit=abc',
      'limit=-1',
      'limit=100000',
      'offset=-5',
      'order_by=created_at;DROP TABLE organization_invitations',
      'order_by=raw',
      "status=pending' OR '1'='1",
      'status=everything',
      'limit=1&limit=2',
    ].map((qs) => `/v1/organizations/${ORG}/invitations?${qs.split('&').map((kv) => kv.split('=').map(ENC).join('=')).join('&')}`);
    const wrongAnswers: { path: string; got: number; body: string }[] = [];
    for (const path of idPaths) {
      const res = await client.send({ method: 'GET', path, headers: good });
      // 501: a path with more segments than any served one is not a read the mirror serves.
      if ((res.status !== 404 && res.status !== 422 && res.status !== 501) || !res.body.includes('"errors"')) wrongAnswers.push({ path: path.slice(0, 90), got: res.status, body: res.body.slice(0, 120) });
    }
    for (const path of listQueries) {
      const res = await client.send({ method: 'GET', path, headers: good });
      if (res.status !== 422 || !res.body.includes('"errors"')) wrongAnswers.push({ path: path.slice(0, 90), got: res.status, body: res.body.slice(0, 120) });
    }
    // An address no invitation can have is a filter like any other: it matches nothing.
    const longEmail = `/v1/organizations/${ORG}/invitations?email_address=${ENC(`${'a'.repeat(400)}@example.com`)}`;
    const long = await client.send({ method: 'GET', path: longEmail, headers: good });
    if (long.status !== 200 || long.body !== '{"data":[],"total_count":0}') wrongAnswers.push({ path: longEmail.slice(0, 90), got: long.status, body: long.body.slice(0, 120) });
    client.close();
    recordResult('hostile-read-api-ids', {
      checks: idPaths.length + listQueries.length + 1,
      wrongAnswers: wrongAnswers.length,
      wrongExamples: wrongAnswers.slice(0, 10),
    });
    expect(service.alive()).toBe(true);
    expect(wrongAnswers).toEqual([]);
  });
});
