import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { bearerAuth } from './auth.ts';

export const DASHBOARD_PATH = '/admin/queues';

export interface DashboardOptions {
  /** The queues to show (the sync queue). */
  queues: Queue[];
  /** Accepted as a Bearer token or as the password of HTTP Basic auth (so a browser can log in). */
  keys: readonly string[];
  /**
   * Hide the retry, clean and delete buttons.
   * @defaultValue false
   */
  readOnly?: boolean;
}

/** bull-board, the BullMQ dashboard, at `/admin/queues`, behind the read API's credential. */
export async function dashboardRoutes(app: FastifyInstance, { queues, keys, readOnly = false }: DashboardOptions): Promise<void> {
  const auth = bearerAuth(keys, { basicRealm: 'clerk-invitation-mirror' });
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(DASHBOARD_PATH);
  createBullBoard({
    queues: queues.map((q) => new BullMQAdapter(q, { readOnlyMode: readOnly })),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'clerk-invitation-mirror' } },
  });
  await app.register(
    async (scope) => {
      scope.addHook('onRequest', auth);
      await scope.register(serverAdapter.registerPlugin(), { prefix: DASHBOARD_PATH });
    },
  );
}
