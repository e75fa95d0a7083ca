import type { Queue } from 'bullmq';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from '../logger.ts';
import type { SyncJobData } from '../queue/job.ts';
import type { PipelineStats } from '../stats.ts';
import { webhookRoutes } from '../webhooks/route.ts';
import { notFoundBody } from '../clerk/errors.ts';
import { bearerAuth } from './auth.ts';
import { dashboardRoutes } from './dashboard.ts';
import { fastInvitationRead, serverWithFastPath } from './fast-read.ts';
import { sendJson } from './json-reply.ts';
import { healthRoutes, type ReadinessCheck } from './health.ts';
import { metricsRoutes, type MirrorMetrics } from './metrics.ts';
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
}

/** Builds the HTTP app without listening; tests call `inject`, `start` calls `listen`. */
export async function buildApp({ log, stats, receiver, readiness, api, metrics, dashboard, fastPath = true }: BuildAppOptions): Promise<FastifyInstance> {
  const v1Auth = api ? bearerAuth(api.keys) : undefined;
  let closing = false;
  const fastRead = api && v1Auth && fastPath ? fastInvitationRead({ reader: api.reader, auth: v1Auth, isClosing: () => closing, stats }) : undefined;
  const app = Fastify({
    ...(fastRead ? { serverFactory: serverWithFastPath(fastRead) } : {}),
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
