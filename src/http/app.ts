import type { Queue } from 'bullmq';
import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import { throttledLog, type Logger } from '../logger.ts';
import type { SyncJobData } from '../queue/job.ts';
import type { PipelineStats } from '../stats.ts';
import { webhookRoutes } from '../webhooks/route.ts';
import { notFoundBody } from '../clerk/error-bodies.ts';
import { bearerAuth } from './auth.ts';
import { dashboardRoutes } from './dashboard.ts';
import { fastInvitationRead, serverWithFastPath } from './fast-read.ts';
import { sendJson } from './json-reply.ts';
import { healthRoutes, type ReadinessCheck } from './health.ts';
import type { MirrorMetrics } from './metrics.ts';
import { metricsRoutes } from './metrics-route.ts';
import { readApiRoutes, type ReadApiOptions } from './read-api.ts';

export interface BuildAppOptions {
  log: Logger;
  stats: PipelineStats;
  readiness: Record<string, ReadinessCheck>;
  /** Present when this process receives webhooks. */
  receiver?: { signingSecret: string; enqueue: (job: SyncJobData) => Promise<void> };
  /** Present when this process serves the read API (`/v1/...`); `keys` are the accepted bearer tokens. */
  api?: ReadApiOptions;
  /** `/metrics`: behind `keys` when given, else loopback peers only. */
  metrics?: { metrics: MirrorMetrics; keys?: readonly string[] };
  /** bull-board at `/admin/queues`: `keys` may look (Bearer, or Basic with the key as password), `adminKeys` may also act. */
  dashboard?: { queues: Queue[]; keys: readonly string[]; adminKeys?: readonly string[] };
  /**
   * Answer plain single-invitation reads before Fastify (see fast-read.ts); off only to
   * compare both paths in tests.
   * @defaultValue true
   */
  fastPath?: boolean;
  /** Connection limits; see `HTTP_LIMITS` for what each default protects. */
  http?: Partial<HttpLimits>;
}

export interface HttpLimits {
  /** From connect to the end of the request headers (an idle socket that never sends one included). */
  headersTimeoutMs: number;
  /** From connect (or the previous response) to the end of the request body. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection between requests. */
  keepAliveTimeoutMs: number;
  /** A socket with no byte either way for this long, whatever its state. */
  idleSocketTimeoutMs: number;
  /** How often node checks the two request timeouts (its default, 30 s, would let them run late by that much). */
  checkIntervalMs: number;
  /** Open connections at most; more are closed at once. 0: no cap. */
  maxConnections: number;
}

/**
 * Svix gives a delivery 15 s in all and sends bodies of at most a few hundred KiB, headers
 * first; the read API's requests are small GETs. So: 10 s for the headers, 30 s for the whole
 * request (twice what Svix waits: an honest delivery that slow has been given up on anyway),
 * 10 s idle between keep-alive requests, 60 s for a socket with no traffic at all. A
 * connection that never finishes its request (an endless chunked body, a body shorter than its
 * Content-Length, an idle or slow-header socket) is closed within 30 s plus the check interval.
 */
export const HTTP_LIMITS: Omit<HttpLimits, 'maxConnections'> = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 10_000,
  idleSocketTimeoutMs: 60_000,
  checkIntervalMs: 1_000,
};

/** Descriptors kept for everything but HTTP clients: Redis connections, SQLite, BAPI sockets, logs. */
const RESERVED_DESCRIPTORS = 256;

/** The default connection cap: the soft open-file limit less `RESERVED_DESCRIPTORS` (0, no cap, where it cannot be read). */
export function defaultMaxConnections(limitsText?: string): number {
  let text = limitsText;
  try {
    text ??= readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return 0;
  }
  const soft = /^Max open files\s+(\d+|unlimited)/m.exec(text)?.[1];
  if (soft === undefined || soft === 'unlimited') return 0;
  return Math.max(64, Number(soft) - RESERVED_DESCRIPTORS);
}

/** Builds the HTTP app without listening; tests call `inject`, `start` calls `listen`. */
export async function buildApp({ log, stats, receiver, readiness, api, metrics, dashboard, fastPath = true, http }: BuildAppOptions): Promise<FastifyInstance> {
  const limits: HttpLimits = { ...HTTP_LIMITS, maxConnections: defaultMaxConnections(), ...http };
  const v1Auth = api ? bearerAuth(api.keys) : undefined;
  let closing = false;
  const fastRead = api && v1Auth && fastPath ? fastInvitationRead({ reader: api.reader, auth: v1Auth, isClosing: () => closing, stats }) : undefined;
  const app = Fastify({
    ...(fastRead ? { serverFactory: serverWithFastPath(fastRead) } : {}),
    // Both servers (Fastify's own and the fast path's, which copies them) get the same limits.
    http: { headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: limits.checkIntervalMs },
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionTimeout: limits.idleSocketTimeoutMs,
    // Ids longer than this never match Clerk's shapes; the handler answers them 404 after auth.
    routerOptions: { maxParamLength: 1024 },
    // URLs the router refuses (bad percent-encoding, a longer parameter) get the same order of
    // answers as any other: under /v1 the credential first, then Clerk's 404 JSON.
    frameworkErrors: (err, req, reply) => {
      if (v1Auth && req.url.startsWith('/v1/')) {
        if (!v1Auth.check(req)) return v1Auth.refuse(req, reply as FastifyReply);
        return sendJson(reply as FastifyReply, 404, notFoundBody());
      }
      return sendJson(reply as FastifyReply, err.statusCode ?? 400, { error: err.code, message: err.message });
    },
    loggerInstance: log as FastifyBaseLogger,
    // Per-request lines would dominate the log at webhook rates; failures are logged where they happen.
    logController: new LogController({ disableRequestLogging: true }),
    // No per-request child logger: nothing logs through req.log, and at read and webhook
    // rates building one for every request was measurable.
    childLoggerFactory: (logger) => logger,
    return503OnClosing: true,
  });
  // Fastify has no option for these two; set here, they apply to whichever server it built.
  app.server.headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  if (limits.maxConnections > 0) {
    app.server.maxConnections = limits.maxConnections;
    const note = throttledLog(log);
    app.server.on('drop', () => note('warn', 'drop', { maxConnections: limits.maxConnections }, 'HTTP connection limit reached: new connections are closed at once (HTTP_MAX_CONNECTIONS)'));
  }
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  // Answers carry no stack traces or internals.
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) log.error({ err }, 'request failed');
    return reply.code(status).send({ error: err.code ?? 'internal_error', message: status >= 500 ? 'internal error' : err.message });
  });
  await app.register(healthRoutes, { checks: readiness });
  if (receiver) await app.register(webhookRoutes, { ...receiver, log, stats });
  if (api) await app.register(readApiRoutes, { stats, ...api });
  if (metrics) await app.register(metricsRoutes, metrics);
  if (dashboard) await app.register(dashboardRoutes, dashboard);
  return app;
}
