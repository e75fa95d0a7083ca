import type { FastifyInstance } from 'fastify';
import { withTimeout } from '../lifecycle/time-limit.ts';

/** One readiness probe: resolves to `true`, or to a short reason it is not ready. */
export type ReadinessCheck = () => Promise<true | string>;

export interface HealthRouteOptions {
  /** Named checks run by `/readyz`, e.g. `{ redis, mirror }`. */
  checks: Record<string, ReadinessCheck>;
  /** @defaultValue 2000 */
  checkTimeoutMs?: number;
}

/** `/healthz`: the process serves. `/readyz`: every dependency answers; 503 names the ones that do not. */
export async function healthRoutes(app: FastifyInstance, { checks, checkTimeoutMs = 2000 }: HealthRouteOptions): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const results = await Promise.all(
      Object.entries(checks).map(async ([name, check]) => {
        try {
          return [name, await withTimeout(Promise.resolve().then(check), checkTimeoutMs)] as const;
        } catch (err) {
          // A timeout reads `no answer within … ms`.
          return [name, (err as Error).message] as const;
        }
      }),
    );
    const failing = Object.fromEntries(results.filter(([, r]) => r !== true));
    if (Object.keys(failing).length) return reply.code(503).send({ status: 'unavailable', failing });
    return { status: 'ready', checks: Object.keys(checks) };
  });
}
