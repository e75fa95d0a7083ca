import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebhookDelivery, type DeliveryOptions } from './delivery.ts';
import { apiVersionInvalidBody } from '../clerk/error-bodies.ts';
import { CLERK_RATE_WINDOW_MS, clerkRequestsPerWindow, SECRET_KEY_PATTERN } from '../clerk/secret-key.ts';
import { notFound, serverErrorBody, tooManyRequests, unauthorized } from './errors.ts';
import { FaultInjector, type FaultOptions } from './faults.ts';
import { Router, errorReply, readJson, send, toReply, type Reply } from './http.ts';
import { RateLimiter } from './rate-limit.ts';
import { seededRandom } from './random.ts';
import { GET_INVITATION, bapiRoutes } from './routes-bapi.ts';
import { controlRoutes, type ControlContext } from './routes-control.ts';
import { StatsCollector, type SimulatorStats } from './stats.ts';
import { SimulatorStore } from './store.ts';

export interface SimulatorOptions {
  /** TCP port; 0 picks a free one. @defaultValue 0 */
  port?: number;
  /** @defaultValue '127.0.0.1' */
  host?: string;
  /** The Bearer secret key BAPI and the control API accept (`sk_test_…` or `sk_live_…`). */
  secretKey: string;
  /** The `whsec_…` secret webhooks are signed with. */
  signingSecret: string;
  /** Requests per window; 0 or Infinity for no limit. @defaultValue 100 for `sk_test_`, 1000 for `sk_live_` (Clerk's limits) */
  rateLimit?: number;
  /** @defaultValue 10_000 */
  rateWindowMs?: number;
  /** Seeds faults, ids, generated data and delivery quirks (each from its own stream). @defaultValue 1 */
  seed?: number;
  faults?: Partial<FaultOptions>;
  /** Webhook endpoint URLs to deliver to. @defaultValue [] */
  webhookUrls?: string[];
  /** Forwarded to the webhook delivery. @defaultValue the delivery module's defaults */
  delivery?: Partial<DeliveryOptions>;
  /** Whether `GET /v1/organization_invitations` exists (else 404). @defaultValue true */
  instanceListAvailable?: boolean;
  /** Whether the single GET and per-organization list carry `public_organization_data`. @defaultValue false */
  publicOrganizationDataOnGet?: boolean;
  /** How long the single GET answers an invitation's previous state after a change (see StoreOptions). @defaultValue 0 */
  readLagMs?: number;
  /** Whether expiry moves `updated_at` (see StoreOptions). @defaultValue true */
  expiryMovesUpdatedAt?: boolean;
}

export interface Simulator {
  /** Base URL such as `http://127.0.0.1:43123`; BAPI lives under `${url}/v1`. */
  url: string;
  store: SimulatorStore;
  setFaults(f: Partial<FaultOptions>): void;
  /** `limit` 0 or Infinity switches the limit off. */
  setRateLimit(limit: number, windowMs?: number): void;
  stats(): SimulatorStats;
  resetStats(): void;
  /** Closes the server, hanging sockets and the delivery. */
  close(): Promise<void>;
  delivery: WebhookDelivery;
}

export async function startSimulator(opts: SimulatorOptions): Promise<Simulator> {
  if (!SECRET_KEY_PATTERN.test(opts.secretKey)) throw new TypeError('secretKey must start with sk_test_ or sk_live_');
  if (!opts.signingSecret.startsWith('whsec_')) throw new TypeError('signingSecret must start with whsec_');
  const seed = opts.seed ?? 1;
  const delivery = new WebhookDelivery({
    signingSecret: opts.signingSecret,
    endpoints: opts.webhookUrls ?? [],
    random: seededRandom(seed ^ 0xde11e5),
    // No `now`: Svix timestamps must be real time, since receivers reject anything 5 min off
    // and the simulator clock may have been advanced by days.
    ...opts.delivery,
  });
  const store = new SimulatorStore({
    seed,
    instanceListAvailable: opts.instanceListAvailable,
    publicOrganizationDataOnGet: opts.publicOrganizationDataOnGet,
    readLagMs: opts.readLagMs,
    expiryMovesUpdatedAt: opts.expiryMovesUpdatedAt,
    onEvent: (type, data) => void delivery.send(type, data),
  });
  const faults = new FaultInjector(seed, opts.faults);
  const limiter = new RateLimiter(opts.rateLimit ?? clerkRequestsPerWindow(opts.secretKey), opts.rateWindowMs ?? CLERK_RATE_WINDOW_MS, () => store.now());
  const collector = new StatsCollector();
  const bapi = new Router(bapiRoutes);
  const control = new Router(controlRoutes);
  const hanging = new Set<Socket>();
  const expectedAuth = `Bearer ${opts.secretKey}`;
  let closed = false;

  const stats = (): SimulatorStats => {
    const windows = limiter.windows();
    return {
      ...collector.snapshot(),
      rateWindows: windows,
      maxAcceptedPerWindow: Math.max(0, ...windows.map((w) => w.accepted)),
      rateLimit: limiter.settings,
      delivery: delivery.stats(),
    };
  };
  const resetStats = () => {
    collector.reset();
    limiter.resetHistory();
  };
  const controlContext: ControlContext = { store, faults, limiter, delivery, stats, resetStats };

  async function answerBapi(req: IncomingMessage, url: URL, match: ReturnType<typeof bapi.match>): Promise<Reply> {
    if (req.headers.authorization !== expectedAuth) return toReply(unauthorized(req.headers.authorization));
    if (!validApiVersion(req.headers['clerk-api-version'])) return errorReply(400, apiVersionInvalidBody('expected a date in the form YYYY-MM-DD'));
    // Clerk's limit is per instance, so only authenticated requests count against it.
    const now = store.now();
    const burstUntil = faults.inBurst(now);
    if (burstUntil !== undefined) return errorReply(429, tooManyRequests(), { 'retry-after': String(Math.max(1, Math.ceil((burstUntil - now) / 1000))) });
    const decision = limiter.check();
    if (!decision.ok) return errorReply(429, tooManyRequests(), { 'retry-after': String(decision.retryAfterSeconds) });
    try {
      if (!match) throw notFound();
      const body = req.method === 'GET' ? undefined : await readJson(req);
      return await match.handler({ store, params: match.params, query: url.searchParams, body });
    } catch (err) {
      return toReply(err);
    }
  }

  async function handleBapi(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const match = bapi.match(req.method ?? 'GET', url.pathname);
    collector.request(match?.key ?? 'unmatched');
    if (match?.key === GET_INVITATION) collector.invitationGet(match.params.invitation_id!);
    const fate = faults.decide();
    if (fate.kind === 'hang') {
      collector.outcome('hang');
      const socket = req.socket;
      hanging.add(socket);
      socket.once('close', () => hanging.delete(socket));
      return;
    }
    if (fate.latencyMs > 0) await sleep(fate.latencyMs);
    if (closed) return;
    if (fate.kind === 'drop') {
      collector.outcome('drop');
      req.socket.destroy();
      return;
    }
    const reply = fate.kind === 'error' ? errorReply(fate.status, serverErrorBody(fate.status)) : await answerBapi(req, url, match);
    collector.outcome(reply.status);
    send(res, reply);
  }

  async function handleControl(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    let reply: Reply;
    try {
      if (req.headers.authorization !== expectedAuth) throw unauthorized(req.headers.authorization);
      const match = control.match(req.method ?? 'GET', url.pathname);
      if (!match) throw notFound();
      const body = req.method === 'GET' ? undefined : await readJson(req);
      reply = await match.handler({ ...controlContext, params: match.params, query: url.searchParams, body });
    } catch (err) {
      reply = toReply(err);
    }
    send(res, reply);
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://simulator');
    const handled = url.pathname.startsWith('/_control/') ? handleControl(req, res, url) : handleBapi(req, res, url);
    handled.catch((err: unknown) => {
      console.error('simulator: unexpected error while answering', err);
      send(res, errorReply(500, serverErrorBody(500)));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { address, port } = server.address() as { address: string; port: number };

  return {
    url: `http://${address.includes(':') ? `[${address}]` : address}:${port}`,
    store,
    delivery,
    setFaults: (f) => faults.set(f),
    setRateLimit: (limit, windowMs) => limiter.configure(limit, windowMs ?? limiter.settings.windowMs),
    stats,
    resetStats,
    async close() {
      if (closed) return;
      closed = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of hanging) socket.destroy();
      server.closeAllConnections();
      await Promise.all([stopped, delivery.close()]);
    },
  };
}

/** BAPI's versions are dates; an absent header means the instance's default. */
function validApiVersion(v: string | string[] | undefined): boolean {
  if (v === undefined) return true;
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(v)) return false;
  const d = new Date(`${v}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().startsWith(v);
}
