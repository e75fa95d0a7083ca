import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { bearerAuth } from './auth.ts';
import { sendJson } from './json-reply.ts';

export const DASHBOARD_PATH = '/admin/queues';

export interface DashboardOptions {
  /** The queues to show (the sync queue). */
  queues: Queue[];
  /**
   * Who may look: accepted as a Bearer token or as the password of HTTP Basic auth (so a
   * browser can log in). Every consuming service holds these, so they never allow a change.
   */
  keys: readonly string[];
  /**
   * Who may also act (retry, promote, clean, delete, pause): MIRROR_ADMIN_KEY. Without one
   * the board is read-only for everyone: its buttons are hidden and its write routes refused.
   * @defaultValue none
   */
  adminKeys?: readonly string[];
}

const READS = new Set(['GET', 'HEAD']);

/** bull-board, the BullMQ dashboard, at `/admin/queues`: readers see it, only the admin key changes anything. */
export async function dashboardRoutes(app: FastifyInstance, { queues, keys, adminKeys = [] }: DashboardOptions): Promise<void> {
  const realm = { basicRealm: 'clerk-invitation-mirror' };
  const look = bearerAuth([...keys, ...adminKeys], realm);
  const admin = adminKeys.length ? bearerAuth(adminKeys, realm) : undefined;
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(DASHBOARD_PATH);
  createBullBoard({
    queues: queues.map((q) => new BullMQAdapter(q, { readOnlyMode: !admin })),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'clerk-invitation-mirror' } },
  });
  await app.register(async (scope) => {
    scope.addHook('onRequest', look);
    // Every bull-board action is a PUT, POST, PATCH or DELETE: reads stay open to readers.
    scope.addHook('onRequest', (req, reply, done) => {
      if (READS.has(req.method) || admin?.check(req)) return done();
      sendJson(reply, 403, {
        error: 'forbidden',
        message: admin ? 'changing jobs needs MIRROR_ADMIN_KEY, not a read key' : 'the dashboard is read-only: set MIRROR_ADMIN_KEY to retry, clean or delete jobs from it',
      });
    });
    await scope.register(serverAdapter.registerPlugin(), { prefix: DASHBOARD_PATH });
  });
}
