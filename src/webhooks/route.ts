import type { FastifyInstance, FastifyReply } from 'fastify';
import { throttledLog, type Logger } from '../logger.ts';
import { EnqueueError } from '../queue/sync-queue.ts';
import { MAX_EVENT_CLOCK_SKEW_MS, syncJobKey, type SyncJobData } from '../queue/job.ts';
import type { PipelineStats } from '../stats.ts';
import { eventHandlers, InvalidEventError, type FutureVersionNote } from './events.ts';
import { WebhookRejection, WebhookVerifier } from './verify.ts';

export interface WebhookRouteOptions {
  signingSecret: string;
  /**
   * Makes a job durable. Rejects with EnqueueError when Redis did not take it (the route
   * answers 503 with Retry-After); any other rejection is a fault of ours and answers 500.
   */
  enqueue: (job: SyncJobData) => Promise<void>;
  log: Logger;
  stats: PipelineStats;
  /**
   * Largest body accepted; Clerk's invitation events are a few KiB.
   * @defaultValue 262144 (256 KiB)
   */
  bodyLimit?: number;
  now?: () => number;
}

export const WEBHOOK_PATH = '/webhooks/clerk';

/**
 * `POST /webhooks/clerk`, in a scope of its own so that its raw-body parser applies to no
 * other route. Fastify itself answers 415 (not JSON) and 413 (over the limit) before the body
 * reaches the handler.
 */
export async function webhookRoutes(app: FastifyInstance, opts: WebhookRouteOptions): Promise<void> {
  const { enqueue, log, stats, bodyLimit = 256 * 1024, now = Date.now } = opts;
  const verifier = new WebhookVerifier(opts.signingSecret);
  const throttled = throttledLog(log, 60_000, now);
  const futureVersion = (type: string, receivedAt: number) => (n: FutureVersionNote) => {
    stats.suspectEvents.futureUpdatedAt++;
    throttled(
      'warn',
      'future-updated-at',
      { type, organizationId: n.organizationId, invitationId: n.invitationId, updatedAt: n.updatedAt, aheadMs: n.updatedAt - receivedAt },
      `a signed event's updated_at lies more than ${MAX_EVENT_CLOCK_SKEW_MS / 60_000} min past our clock (a Clerk bug or a leaked signing secret): its invitation is fetched, the value is not taken as a version`,
    );
  };

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));

  const refuse = (reply: FastifyReply, status: number, reason: string, message: string) => {
    stats.webhook('rejected', reason);
    return reply.code(status).send({ error: reason, message });
  };

  app.post(WEBHOOK_PATH, async (req, reply) => {
    if (!Buffer.isBuffer(req.body)) return refuse(reply, 400, 'malformed_body', 'empty body');
    const receivedAt = now();
    let event;
    try {
      event = verifier.verify(req.body, req.headers);
    } catch (err) {
      if (err instanceof WebhookRejection) {
        log.debug({ reason: err.reason }, 'webhook refused');
        return refuse(reply, err.status, err.reason, err.message);
      }
      throw err;
    }
    const handler = Object.hasOwn(eventHandlers, event.type) ? eventHandlers[event.type] : undefined;
    if (!handler) {
      stats.webhook('ignored', event.type.slice(0, 100));
      log.debug({ type: event.type }, 'webhook of a type the mirror does not act on; acknowledged');
      return reply.code(200).send({ ok: true, ignored: true });
    }
    let job: SyncJobData;
    try {
      job = handler(event, receivedAt, futureVersion(event.type, receivedAt));
    } catch (err) {
      if (err instanceof InvalidEventError) return refuse(reply, 400, 'malformed_body', err.message);
      throw err;
    }
    const enqueueStart = performance.now();
    try {
      await enqueue(job);
      stats.enqueued(performance.now() - enqueueStart);
    } catch (err) {
      stats.webhook('unavailable', event.type);
      // While Redis refuses (down, out of memory, a replica) every delivery and every Svix
      // retry fails alike: one line per interval with the count, not one per request.
      const unavailable = err instanceof EnqueueError;
      throttled('error', 'enqueue', { err: (err as Error).message, job: syncJobKey(job) }, `could not make the event durable; answered ${unavailable ? 503 : 500} so Svix retries`);
      if (unavailable) return reply.code(503).header('retry-after', '5').send({ error: 'queue_unavailable' });
      throw err;
    }
    stats.webhook('accepted', event.type);
    return reply.code(200).send({ ok: true });
  });
}
