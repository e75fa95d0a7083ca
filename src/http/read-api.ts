import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { INVITATION_ID, ORGANIZATION_ID } from '../clerk/ids.ts';
import { apiVersionInvalidBody, apiVersionProblem, notFoundBody, notMirroredBody, organizationNotFoundBody } from '../clerk/error-bodies.ts';
import { InvalidListParamError, parseListQuery, type ListQuery } from '../mirror/list-params.ts';
import type { MirrorReader } from '../mirror/reader.ts';
import type { ReadThrough } from '../replica/read-through.ts';
import type { PipelineStats, ReadRoute } from '../stats.ts';
import { bearerAuth } from './auth.ts';
import { sendJson } from './json-reply.ts';

export interface ReadApiOptions {
  /** The mirror's read side; the routes only read through it. */
  reader: MirrorReader;
  /**
   * Bearer tokens accepted (see `readApiKeys`). Registering with none throws: the read API
   * fails closed.
   */
  keys: readonly string[];
  /**
   * READ_THROUGH: a single-invitation lookup of an invitation the mirror has never seen asks
   * Clerk (replica/read-through.ts); such answers carry `x-mirror-source: clerk`.
   */
  readThrough?: Pick<ReadThrough, 'lookup'>;
  /** Where answers are counted and timed by route and status (`/metrics`). */
  stats?: Pick<PipelineStats, 'readAnswered'>;
}

const ROUTES: Record<string, ReadRoute> = {
  '/v1/organizations/:organization_id/invitations/:invitation_id': 'invitation',
  '/v1/organizations/:organization_id/invitations': 'list',
  '/v1/organizations/:organization_id/invitations/pending': 'pending_list',
};

/**
 * BAPI's organization-invitation reads, same paths, same JSON, same errors, served from the
 * mirror: `GET /v1/organizations/:organization_id/invitations/:invitation_id`, the
 * organization's list `GET /v1/organizations/:organization_id/invitations` and its deprecated
 * pending list `…/invitations/pending`. Every path under `/v1`, matched or not, needs the
 * bearer; a malformed `Clerk-API-Version` answers 400 `api_version_invalid`. A path the mirror
 * does not serve answers 501 `not_mirrored`, never `resource_not_found`: a caller can tell "ask
 * Clerk" from "does not exist".
 *
 * Bodies are the stored JSON text, byte for byte (a list is concatenated from the stored
 * texts), with `content-type: application/json` exactly, as `@clerk/backend` requires.
 */
export async function readApiRoutes(app: FastifyInstance, { reader, keys, readThrough, stats }: ReadApiOptions): Promise<void> {
  const auth = bearerAuth(keys);
  await app.register(
    async (v1) => {
      if (stats) {
        v1.addHook('onResponse', (req, reply, done) => {
          stats.readAnswered(ROUTES[req.routeOptions.url ?? ''] ?? 'other', reply.statusCode, reply.elapsedTime);
          done();
        });
      }
      v1.addHook('onRequest', auth);
      v1.addHook('onRequest', (req, reply, done) => {
        const problem = apiVersionProblem(req.headers['clerk-api-version']);
        if (problem === undefined) done();
        else sendJson(reply, 400, apiVersionInvalidBody(problem));
      });
      v1.setNotFoundHandler((req, reply) => sendJson(reply, 501, notMirroredBody(req.method, pathOf(req.url))));

      v1.get<{ Params: { organization_id: string; invitation_id: string } }>(
        '/organizations/:organization_id/invitations/:invitation_id',
        async (req, reply) => {
          const { organization_id: organizationId, invitation_id: invitationId } = req.params;
          if (!ORGANIZATION_ID.test(organizationId)) return organizationNotFound(reply);
          const raw = INVITATION_ID.test(invitationId) ? reader.findRaw(organizationId, invitationId) : undefined;
          if (raw !== undefined) return sendJson(reply, 200, raw);
          if (readThrough && INVITATION_ID.test(invitationId) && reader.neverSeen(organizationId, invitationId)) {
            const answer = await readThrough.lookup(organizationId, invitationId);
            if (answer && 'raw' in answer) return sendJson(reply.header('x-mirror-source', 'clerk'), 200, answer.raw);
          }
          return reader.organizationMissing(organizationId) ? organizationNotFound(reply) : notFound(reply);
        },
      );

      const list = (pendingOnly: boolean) => async (req: FastifyRequest<{ Params: { organization_id: string } }>, reply: FastifyReply) => {
        const organizationId = req.params.organization_id;
        let query: ListQuery;
        const params = new URLSearchParams(queryOf(req.url));
        // The pending list takes no status: BAPI ignores one sent there.
        if (pendingOnly) params.delete('status');
        try {
          query = parseListQuery(organizationId, params);
        } catch (err) {
          if (err instanceof InvalidListParamError) return sendJson(reply, 422, err.toClerkJSON());
          throw err;
        }
        // After the parameters, as BAPI: a bad parameter is a 422 even for an unknown organization.
        if (!ORGANIZATION_ID.test(organizationId) || reader.organizationMissing(organizationId)) return organizationNotFound(reply);
        const { rows, totalCount } = reader.listRaw(pendingOnly ? { ...query, statuses: ['pending'] } : query);
        return sendJson(reply, 200, `{"data":[${rows.join(',')}],"total_count":${totalCount}}`);
      };
      v1.get('/organizations/:organization_id/invitations', list(false));
      v1.get('/organizations/:organization_id/invitations/pending', list(true));
    },
    { prefix: '/v1' },
  );
}

function notFound(reply: FastifyReply): FastifyReply {
  return sendJson(reply, 404, notFoundBody());
}

function organizationNotFound(reply: FastifyReply): FastifyReply {
  return sendJson(reply, 404, organizationNotFoundBody());
}

const queryOf = (url: string) => (url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
const pathOf = (url: string) => (url.includes('?') ? url.slice(0, url.indexOf('?')) : url);
