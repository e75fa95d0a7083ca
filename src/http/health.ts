import type { FastifyInstance } from 'fastify';

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
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<string>((resolve) => {
          timer = setTimeout(() => resolve(`no answer within ${checkTimeoutMs} ms`), checkTimeoutMs);
        });
        try {
          return [name, await Promise.race([check(), timeout])] as const;
        } catch (err) {
          return [name, (err as Error).message] as const;
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    const failing = Object.fromEntries(results.filter(([, r]) => r !== true));
    if (Object.keys(failing).length) return reply.code(503).send({ status: 'unavailable', failing });
    return { status: 'ready', checks: Object.keys(checks) };
  });
}
