// Scenario: clients that open connections and never finish a request (an idle socket, headers
// sent a line at a time, an endless chunked body, a body shorter than its Content-Length, a
// keep-alive connection left idle), many at once, against the service's binary (all roles, so
// the read API's fast-path server). Each must be closed within its timeout (src/http/app.ts,
// HTTP_LIMITS), fresh probes (/healthz, a signed webhook, a read) must keep succeeding, and a
// slow but honest Svix delivery (a large signed body sent in chunks over several seconds)
// must be accepted.
import { readdirSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { HTTP_LIMITS } from '../../src/http/app.ts';
import { svixHeaders } from './helpers/http.ts';
import { recordResult, scale, scanLogs, scenario } from './helpers/scenario.ts';

const sockets: Socket[] = [];
const timers: NodeJS.Timeout[] = [];
const scene = scenario('slow-clients', {
  beforeRelease() {
    for (const t of timers) clearInterval(t);
    for (const s of sockets) s.destroy();
  },
});
const { creds } = scene;

const PER_KIND = scale(60, 220);
const KINDS = ['idle', 'slowHeaders', 'endlessChunked', 'shortBody', 'keepAliveIdle'] as const;
type Kind = (typeof KINDS)[number];
/** When each kind must be closed by, from connect: its timeout, node's check interval, and 3 s of slack on a busy machine. */
const DEADLINE_MS: Record<Kind, number> = {
  idle: HTTP_LIMITS.headersTimeoutMs + HTTP_LIMITS.checkIntervalMs + 3000,
  slowHeaders: HTTP_LIMITS.headersTimeoutMs + HTTP_LIMITS.checkIntervalMs + 3000,
  endlessChunked: HTTP_LIMITS.requestTimeoutMs + HTTP_LIMITS.checkIntervalMs + 3000,
  shortBody: HTTP_LIMITS.requestTimeoutMs + HTTP_LIMITS.checkIntervalMs + 3000,
  // node keeps an idle keep-alive socket up to 1 s past keepAliveTimeout.
  keepAliveIdle: HTTP_LIMITS.keepAliveTimeoutMs + 1000 + 3000,
};

const event = (id: string, org: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ data: { id, organization_id: org, object: 'organization_invitation', updated_at: Date.now() }, object: 'event', type: 'organizationInvitation.created', timestamp: Date.now(), ...extra });

/** One request on a connection of its own; resolves with the status, or 0 on any failure. */
function probe(url: string, opts: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const req = request({ host: u.hostname, port: u.port, method: opts.method ?? 'GET', path: opts.path, headers: opts.headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.setTimeout(5000, () => req.destroy());
    req.on('error', () => resolve(0));
    req.end(opts.body);
  });
}

/** A connection that misbehaves as `kind` says; resolves with ms from connect to the server closing it. */
function misbehave(port: number, kind: Kind): Promise<number> {
  return new Promise((resolve) => {
    const started = Date.now();
    const s = connect(port, '127.0.0.1');
    sockets.push(s);
    const drip = (text: string, everyMs: number) => {
      const t = setInterval(() => s.writable && s.write(text), everyMs);
      timers.push(t);
      s.once('close', () => clearInterval(t));
    };
    s.on('connect', () => {
      if (kind === 'slowHeaders') {
        s.write('POST /webhooks/clerk HTTP/1.1\r\nhost: x\r\n');
        drip('x-slow: 1\r\n', 1000);
      } else if (kind === 'endlessChunked') {
        s.write('POST /webhooks/clerk HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n');
        drip('1\r\n \r\n', 1000);
      } else if (kind === 'shortBody') {
        s.write('POST /webhooks/clerk HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n{"data":');
      } else if (kind === 'keepAliveIdle') {
        s.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n');
      }
    });
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => resolve(Date.now() - started));
  });
}

/** A signed body of `size` bytes written in `chunks` pieces `gapMs` apart, Content-Length declared up front. */
function slowDelivery(port: number, body: string, chunks: number, gapMs: number): Promise<{ status: number; ms: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const headers = { ...svixHeaders(creds.signingSecret, body), 'content-length': String(Buffer.byteLength(body)) };
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/webhooks/clerk', headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Date.now() - started }));
    });
    req.on('error', () => resolve({ status: 0, ms: Date.now() - started }));
    const buf = Buffer.from(body);
    const size = Math.ceil(buf.length / chunks);
    void (async () => {
      for (let i = 0; i < chunks; i++) {
        req.write(buf.subarray(i * size, (i + 1) * size));
        if (i < chunks - 1) await sleep(gapMs);
      }
      req.end();
    })();
  });
}

const openFds = (pid: number) => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
};

it(`${PER_KIND * KINDS.length} connections that never finish a request are closed within their timeouts; probes and a slow honest delivery succeed meanwhile`, { timeout: scale(120_000, 240_000) }, async () => {
  await scene.startRedis({ aof: false });
  const sim = await scene.startSim();
  const service = await scene.spawn({ BAPI_RATE_LIMIT: '100000' });
  scene.watch(service, { record: false });
  const org = sim.store.createOrganization({ name: 'Slow clients' }).id;
  const readable = sim.store.createInvitation(org, { emailAddress: 'slow.reader@example.com' }).id;
  const readPath = `/v1/organizations/${org}/invitations/${readable}`;
  const auth = { authorization: `Bearer ${creds.apiKey}` };
  const deadline = Date.now() + 30_000;
  while ((await probe(service.url, { path: readPath, headers: auth })) !== 200) {
    if (Date.now() > deadline) throw new Error('the read target never reached the mirror');
    await sleep(200);
  }
  const fdsBefore = openFds(service.pid());

  const closing = KINDS.flatMap((kind) => Array.from({ length: PER_KIND }, () => misbehave(service!.port, kind).then((ms) => ({ kind, ms }))));
  await sleep(500);
  const fdsWithBad = openFds(service.pid());

  // Probes every 500 ms while the bad connections are open, each on a fresh connection.
  const probes: { kind: string; status: number }[] = [];
  let probing = true;
  const prober = (async () => {
    let i = 0;
    while (probing) {
      const inv = `orginv_2slowProbe${String(i++).padStart(8, '0')}`;
      const body = event(inv, org);
      const [health, hook, read] = await Promise.all([
        probe(service!.url, { path: '/healthz' }),
        probe(service!.url, { method: 'POST', path: '/webhooks/clerk', headers: svixHeaders(creds.signingSecret, body), body }),
        probe(service!.url, { path: readPath, headers: auth }),
      ]);
      probes.push({ kind: 'healthz', status: health }, { kind: 'webhook', status: hook }, { kind: 'read', status: read });
      await sleep(500);
    }
  })();

  // Svix sends up to a few hundred KiB within its 15 s: 200 KiB in 16 pieces over 7.5 s.
  const big = event('orginv_2slowHonest000000001', org, { padding: 'p'.repeat(200 * 1024) });
  const honest = await slowDelivery(service.port, big, 16, 500);

  const closed = await Promise.all(closing);
  probing = false;
  await prober;
  const byKind = Object.fromEntries(KINDS.map((k) => [k, closed.filter((c) => c.kind === k).map((c) => c.ms)]));
  const maxMs = Object.fromEntries(KINDS.map((k) => [k, Math.max(...byKind[k]!)]));
  const minMs = Object.fromEntries(KINDS.map((k) => [k, Math.min(...byKind[k]!)]));
  const failedProbes = probes.filter((p) => p.status !== 200);
  const logs = scanLogs(service.output(), creds);
  const figures = {
    badConnections: closed.length,
    closedMinMs: minMs,
    closedMaxMs: maxMs,
    deadlinesMs: DEADLINE_MS,
    probes: probes.length,
    failedProbes: failedProbes.length,
    failedProbeKinds: [...new Set(failedProbes.map((p) => `${p.kind}:${p.status}`))],
    slowHonestDelivery: { ...honest, bytes: big.length },
    serviceFds: { before: fdsBefore, withBad: fdsWithBad, after: openFds(service.pid()) },
    alive: service.alive(),
    logSecretHits: logs.secrets,
  };
  recordResult('slow-clients', figures);

  for (const k of KINDS) expect(maxMs[k], k).toBeLessThan(DEADLINE_MS[k]);
  expect(honest.status).toBe(200);
  expect(honest.ms).toBeGreaterThan(7000);
  expect(probes.length).toBeGreaterThan(20);
  expect(failedProbes).toEqual([]);
  expect(service.alive()).toBe(true);
  expect(logs.secrets).toEqual([]);
});
