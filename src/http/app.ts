import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from '../logger.ts';
import type { SyncJobData } from '../queue/job.ts';
import type { PipelineStats } from '../stats.ts';
import { webhookRoutes } from '../webhooks/route.ts';
import { healthRoutes, type ReadinessCheck } from './health.ts';

export interface BuildAppOptions {
  log: Logger;
  stats: PipelineStats;
  /** Present when this process receives webhooks. */
  receiver?: { signingSecret: string; enqueue: (job: SyncJobData) => Promise<void> };
  readiness: Record<string, ReadinessCheck>;
}

/** Builds the HTTP app without listening; tests call `inject`, `start` calls `listen`. */
export async function buildApp({ log, stats, receiver, readiness }: BuildAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // Per-request lines would dominate the log at webhook rates; failures are logged where they happen.
    logController: new LogController({ disableRequestLogging: true }),
    // Answers carry no stack traces or internals.
    return503OnClosing: true,
  });
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) log.error({ err }, 'request failed');
    return reply.code(status).send({ error: err.code ?? 'internal_error', message: status >= 500 ? 'internal error' : err.message });
  });
  await app.register(healthRoutes, { checks: readiness });
  if (receiver) await app.register(webhookRoutes, { ...receiver, log, stats });
  return app;
}
