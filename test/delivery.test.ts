import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'svix';
import { afterEach, describe, expect, it } from 'vitest';
import { OTHER_EVENT_TYPES } from '../src/simulator/delivery-events.ts';
import { WebhookDelivery } from '../src/simulator/delivery.ts';
import { seededRandom } from '../src/simulator/random.ts';

const SECRET = `whsec_${randomBytes(24).toString('base64')}`;
/** From the shared organization-invitation fixture, trimmed. */
const invitation: Record<string, unknown> = {
  object: 'organization_invitation',
  id: 'orginv_2xQ7dM3bVvQpZr1s9kLw0aYt8Hc',
  email_address: 'ada@example.com',
  role: 'org:member',
  role_name: 'Member',
  organization_id: 'org_2xQ6yN8cTtHh4Jk2mPq7rSd1Ef0',
  status: 'pending',
  public_metadata: { team: 'compilers' },
  private_metadata: {},
  url: null,
  expires_at: 1766102400000,
  created_at: 1764796800000,
  updated_at: 1764796800000,
};

interface Arrival {
  id: string;
  timestamp: number;
  body: string;
  envelope: { type: string; data: Record<string, unknown>; [k: string]: unknown };
  at: number;
}

type Handler = (arrival: Arrival, res: ServerResponse, index: number) => void;

/** A real endpoint that verifies every request as a Clerk receiver would; unverifiable ones fail the test. */
async function receiver(handler: Handler = (_a, res) => res.writeHead(200).end()) {
  const arrivals: Arrival[] = [];
  const unverified: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = flat(req.headers);
      try {
        new Webhook(SECRET).verify(body, headers);
      } catch (err) {
        unverified.push(String(err));
        res.writeHead(400).end();
        return;
      }
      const arrival: Arrival = {
        id: headers['svix-id']!,
        timestamp: Number(headers['svix-timestamp']),
        body,
        envelope: JSON.parse(body) as Arrival['envelope'],
        at: performance.now(),
      };
      arrivals.push(arrival);
      handler(arrival, res, arrivals.length - 1);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/clerk`;
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  cleanups.push(close);
  return { url, arrivals, unverified, close };
}

function flat(h: IncomingHttpHeaders): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : (v ?? '')]));
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function delivery(opts: ConstructorParameters<typeof WebhookDelivery>[0]) {
  const d = new WebhookDelivery(opts);
  cleanups.push(() => d.close());
  return d;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('WebhookDelivery', () => {
  it('posts a Svix-signed Clerk envelope', async () => {
    const r = await receiver();
    const d = delivery({ signingSecret: SECRET, endpoints: [r.url], random: seededRandom(1) });
    const before = Date.now();
    const id = d.send('organizationInvitation.created', invitation);
    await d.idle();

    expect(r.unverified).toEqual([]);
    expect(r.arrivals).toHaveLength(1);
    const [a] = r.arrivals;
    expect(a!.id).toBe(id);
    expect(id).toMatch(/^msg_[0-9A-Za-z]{27}$/);
    expect(Math.abs(a!.timestamp - Math.floor(Date.now() / 1000))).toBeLessThanOrEqual(2);
    const env = a!.envelope;
    expect(env.data).toEqual(invitation);
    expect(env).toMatchObject({ object: 'event', type: 'organizationInvitation.created' });
    expect(env.instance_id).toMatch(/^ins_[0-9A-Za-z]{27}$/);
    expect(env.timestamp).toBeGreaterThanOrEqual(before);
    expect(env.event_attributes).toMatchObject({ http_request: { client_ip: expect.any(String), user_agent: expect.any(String) } });
    expect(d.stats()).toEqual({ sent: 1, delivered: 1, failedAttempts: 0, dropped: 0, duplicated: 0, pending: 0, exhausted: 0 });
  });

  it('retries a failing endpoint on the scaled Svix schedule with the same svix-id', async () => {
    const r = await receiver((_a, res, i) => res.writeHead(i < 2 ? 500 : 200).end());
    const d = delivery({ signingSecret: SECRET, endpoints: [r.url], random: seededRandom(2) });
    const id = d.send('organizationInvitation.accepted', invitation);
    await d.idle();

    expect(r.unverified).toEqual([]);
    expect(r.arrivals.map((a) => a.id)).toEqual([id, id, id]);
    expect(new Set(r.arrivals.map((a) => a.body)).size).toBe(1);
    // 5 s and 5 min scaled by the default 0.001 (setTimeout may fire a millisecond early).
    expect(r.arrivals[1]!.at - r.arrivals[0]!.at).toBeGreaterThanOrEqual(4);
    expect(r.arrivals[2]!.at - r.arrivals[1]!.at).toBeGreaterThanOrEqual(290);
    expect(d.stats()).toMatchObject({ sent: 1, delivered: 1, failedAttempts: 2, exhausted: 0, pending: 0 });
  });

  it('gives up after the first try and seven retries', async () => {
    const r = await receiver((_a, res) => res.writeHead(503).end());
    const d = delivery({ signingSecret: SECRET, endpoints: [r.url], retryScale: 0.000001, random: seededRandom(3) });
    const id = d.send('organizationInvitation.revoked', invitation);
    await d.idle();
    expect(r.arrivals.map((a) => a.id)).toEqual(Array(8).fill(id));
    expect(d.stats()).toMatchObject({ sent: 1, delivered: 0, failedAttempts: 8, exhausted: 1, pending: 0 });
  });

  it('counts a network error or a timeout as a failed attempt and retries', async () => {
    // Nothing listens on a port a server just released: connection refused.
    const gone = await receiver();
    await gone.close();
    const hanging = await receiver((_a, res, i) => {
      if (i > 0) res.writeHead(204).end();
    });
    const d = delivery({ signingSecret: SECRET, endpoints: [gone.url, hanging.url], retryScale: 0.000001, timeoutMs: 200, random: seededRandom(4) });
    const id = d.send('organizationInvitation.created', invitation);
    await d.idle();
    expect(hanging.arrivals.map((a) => a.id)).toEqual([id, id]);
    expect(d.stats()).toMatchObject({ sent: 2, delivered: 1, failedAttempts: 9, exhausted: 1, pending: 0 });
  });

  it('with duplicateRate 1 delivers every message twice under one svix-id', async () => {
    const r = await receiver();
    const d = delivery({ signingSecret: SECRET, endpoints: [r.url], duplicateRate: 1, random: seededRandom(5) });
    const ids = [1, 2, 3].map((n) => d.send('organizationInvitation.created', { ...invitation, id: `orginv_${n}` }));
    await d.idle();
    expect(r.unverified).toEqual([]);
    expect(r.arrivals.map((a) => a.id).sort()).toEqual([...ids, ...ids].sort());
    for (const id of ids) expect(new Set(r.arrivals.filter((a) => a.id === id).map((a) => a.body)).size).toBe(1);
    expect(d.stats()).toMatchObject({ sent: 3, delivered: 6, duplicated: 3, pending: 0 });
  });

  it('with dropRate 1 delivers nothing and counts the drops', async () => {
    const r = await receiver();
    const d = delivery({ signingSecret: SECRET, endpoints: [r.url], dropRate: 1, random: seededRandom(6) });
    for (let i = 0; i < 5; i++) d.send('organizationInvitation.created', invitation);
    await d.idle();
    await sleep(50);
    expect(r.arrivals).toHaveLength(0);
    expect(d.stats()).toMatchObject({ sent: 5, dropped: 5, delivered: 0, pending: 0 });
  });

  it('with reorderRate 1 lets later messages overtake earlier ones, the same way for one seed', async () => {
    const run = async () => {
      const r = await receiver();
      const d = delivery({ signingSecret: SECRET, endpoints: [r.url], reorderRate: 1, reorderWindowMs: 200, random: seededRandom(7) });
      const sent = Array.from({ length: 10 }, (_, n) => d.send('organizationInvitation.created', { ...invitation, id: `orginv_${n}` }));
      await d.idle();
      return { sent, arrived: r.arrivals.map((a) => a.id) };
    };
    const first = await run();
    expect(first.arrived.slice().sort()).toEqual(first.sent.slice().sort());
    expect(first.arrived).not.toEqual(first.sent);
    const second = await run();
    expect(second.sent).toEqual(first.sent);
  });

  it('adds an unrelated Clerk event beside each invitation event when asked', async () => {
    const r = await receiver();
    const d = delivery({ signingSecret: SECRET, endpoints: [r.url], otherEventRate: 1, random: seededRandom(8) });
    d.send('organizationInvitation.created', invitation);
    d.send('organizationInvitation.revoked', invitation);
    await d.idle();
    expect(r.unverified).toEqual([]);
    const types = r.arrivals.map((a) => a.envelope.type);
    expect(types.filter((t) => t.startsWith('organizationInvitation.')).sort()).toEqual(['organizationInvitation.created', 'organizationInvitation.revoked']);
    const others = types.filter((t) => !t.startsWith('organizationInvitation.'));
    expect(others).toHaveLength(2);
    for (const t of others) expect(OTHER_EVENT_TYPES).toContain(t);
    expect(d.stats()).toMatchObject({ sent: 4, delivered: 4 });
  });

  it('idle() waits for in-flight requests and pending retries', async () => {
    let release: (() => void) | undefined;
    const r = await receiver((_a, res, i) => {
      if (i === 0) res.writeHead(500).end();
      else release = () => res.writeHead(200).end();
    });
    const d = delivery({ signingSecret: SECRET, endpoints: [r.url], random: seededRandom(9) });
    d.send('organizationInvitation.created', invitation);
    let idle = false;
    const done = d.idle().then(() => {
      idle = true;
    });
    while (!release) await sleep(5);
    await sleep(30);
    expect(r.arrivals).toHaveLength(2);
    expect(idle).toBe(false);
    expect(d.stats().pending).toBe(1);
    release();
    await done;
    expect(idle).toBe(true);
    expect(d.stats()).toMatchObject({ delivered: 1, failedAttempts: 1, pending: 0 });
  });

  it('close() aborts what is in flight and releases idle()', async () => {
    const r = await receiver(() => undefined);
    const d = delivery({ signingSecret: SECRET, endpoints: [r.url], random: seededRandom(10) });
    d.send('organizationInvitation.created', invitation);
    while (r.arrivals.length === 0) await sleep(5);
    const idle = d.idle();
    await d.close();
    await idle;
    expect(d.stats()).toMatchObject({ delivered: 0, pending: 0 });
  });

  it('refuses rates outside [0, 1] and negative durations', () => {
    expect(() => new WebhookDelivery({ signingSecret: SECRET, dropRate: 1.5 })).toThrow(RangeError);
    const d = delivery({ signingSecret: SECRET });
    expect(() => d.setOptions({ duplicateRate: -0.1 })).toThrow(RangeError);
    expect(() => d.setOptions({ delayMs: { min: 5, max: 1 } })).toThrow(RangeError);
    expect(() => d.setOptions({ timeoutMs: -1 })).toThrow(RangeError);
    d.setOptions({ reorderRate: 0.5, delayMs: { min: 1, max: 2 } });
  });

  it('sends nothing to a removed endpoint', async () => {
    const a = await receiver();
    const b = await receiver();
    const d = delivery({ signingSecret: SECRET, endpoints: [a.url], random: seededRandom(11) });
    d.addEndpoint(b.url);
    d.removeEndpoint(a.url);
    d.send('organizationInvitation.created', invitation);
    await d.idle();
    expect(a.arrivals).toHaveLength(0);
    expect(b.arrivals).toHaveLength(1);
  });
});
