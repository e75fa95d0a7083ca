import type { FastifyInstance } from 'fastify';
import { bearerAuth } from './auth.ts';
import type { MirrorMetrics } from './metrics.ts';

export interface MetricsRouteOptions {
  metrics: MirrorMetrics;
  /** When given, `/metrics` needs `Authorization: Bearer <one of keys>` (401 in Clerk's JSON otherwise). */
  keys?: readonly string[];
  /**
   * Refuse (403) scrapes whose TCP peer is not a loopback address. The socket's own peer
   * address is used, never `X-Forwarded-For`, so it cannot be spoofed; behind a reverse
   * proxy on the same host every scrape looks local, so use `keys` there.
   * @defaultValue true when `keys` is not given, else false (never open to the network by accident)
   */
  loopbackOnly?: boolean;
}

/** `GET /metrics` in Prometheus text format. */
export async function metricsRoutes(app: FastifyInstance, { metrics, keys, loopbackOnly = keys === undefined }: MetricsRouteOptions): Promise<void> {
  if (loopbackOnly) {
    app.addHook('onRequest', async (req, reply) => {
      if (isLoopback(req.socket.remoteAddress)) return undefined;
      return reply.code(403).send({ error: 'forbidden', message: '/metrics answers loopback clients only' });
    });
  }
  if (keys !== undefined) app.addHook('onRequest', bearerAuth(keys));
  app.get('/metrics', async (_req, reply) => {
    const text = await metrics.render();
    return reply.header('content-type', metrics.registry.contentType).send(text);
  });
}

/** 127.0.0.0/8, ::1, and IPv4 loopback mapped into IPv6. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  if (address === '::1') return true;
  const v4 = address.toLowerCase().startsWith('::ffff:') ? address.slice(7) : address;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}
