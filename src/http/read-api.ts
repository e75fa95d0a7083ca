import type { FastifyInstance, FastifyReply } from 'fastify';
import { notFoundBody } from '../clerk/errors.ts';
import { InvalidListParamError, parseListParams, type ListQuery } from '../mirror/list-params.ts';
import type { MirrorReader } from '../mirror/lookup.ts';
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
}

/** Clerk's id shapes: a prefix, an underscore, letters and digits. Anything else is a miss without a query. */
export const ORGANIZATION_ID = /^org_[A-Za-z0-9]{1,64}$/;
export const INVITATION_ID = /^orginv_[A-Za-z0-9]{1,64}$/;

type Query = Record<string, string | string[] | undefined>;

/**
 * BAPI's two organization-invitation reads, same paths, same JSON, same errors, served from
 * the mirror: `GET /v1/organizations/:organization_id/invitations/:invitation_id` and
 * `GET /v1/organizations/:organization_id/invitations`. Every path under `/v1`, matched or
 * not, needs the bearer; an unknown one answers Clerk's 404 JSON.
 *
 * Bodies are the stored JSON text, byte for byte (a list is concatenated from the stored
 * texts), with `content-type: application/json` exactly, as `@clerk/backend` requires.
 */
export async function readApiRoutes(app: FastifyInstance, { reader, keys }: ReadApiOptions): Promise<void> {
  const auth = bearerAuth(keys);
  await app.register(
    async (v1) => {
      v1.addHook('onRequest', auth);
      v1.setNotFoundHandler((_req, reply) => notFound(reply));

      v1.get<{ Params: { organization_id: string; invitation_id: string } }>(
        '/organizations/:organization_id/invitations/:invitation_id',
        async (req, reply) => {
          const { organization_id: organizationId, invitation_id: invitationId } = req.params;
          if (!ORGANIZATION_ID.test(organizationId) || !INVITATION_ID.test(invitationId)) return notFound(reply);
          const raw = reader.findRaw(organizationId, invitationId);
          return raw === undefined ? notFound(reply) : sendJson(reply, 200, raw);
        },
      );

      v1.get<{ Params: { organization_id: string }; Querystring: Query }>('/organizations/:organization_id/invitations', async (req, reply) => {
        const organizationId = req.params.organization_id;
        if (!ORGANIZATION_ID.test(organizationId)) return notFound(reply);
        let query: ListQuery;
        let emails: Set<string> | undefined;
        try {
          ({ query, emails } = listQueryFrom(organizationId, req.query));
        } catch (err) {
          if (err instanceof InvalidListParamError) return sendJson(reply, 422, err.toClerkJSON());
          throw err;
        }
        const { rows, totalCount } = emails ? listByEmail(reader, query, emails) : reader.listRaw(query);
        return sendJson(reply, 200, `{"data":[${rows.join(',')}],"total_count":${totalCount}}`);
      });
    },
    { prefix: '/v1' },
  );
}

function notFound(reply: FastifyReply): FastifyReply {
  return sendJson(reply, 404, notFoundBody());
}

/** BAPI's list parameters from the query string; `status` may repeat or be comma-separated, the others may not repeat. */
function listQueryFrom(organizationId: string, q: Query): { query: ListQuery; emails: Set<string> | undefined } {
  const once = (name: string): string | undefined => {
    const v = q[name];
    if (Array.isArray(v)) throw new InvalidListParamError(name, `${name} may be given only once`);
    return v;
  };
  const status = q.status === undefined ? undefined : [q.status].flat().flatMap((s) => s.split(','));
  const query = parseListParams({ organizationId, status, limit: once('limit'), offset: once('offset'), orderBy: once('order_by') });
  const emailValues = q.email_address === undefined ? [] : [q.email_address].flat().filter((e) => e !== '');
  for (const e of emailValues) {
    if (e.length > 320) throw new InvalidListParamError('email_address', 'email_address is too long');
  }
  return { query, emails: emailValues.length ? new Set(emailValues.map((e) => e.toLowerCase())) : undefined };
}

/**
 * The `email_address` filter (BAPI accepts it; `@clerk/backend` does not send it). The reader
 * has no e-mail filter, so this reads every matching row of the organization in order
 * (LIMIT -1: SQLite's "no limit"), keeps the addresses asked for (case-insensitively) and
 * slices the page. Organizations hold few invitations, so the cost stays small.
 */
function listByEmail(reader: MirrorReader, query: ListQuery, emails: Set<string>): { rows: string[]; totalCount: number } {
  const all = reader.listRaw({ ...query, limit: -1, offset: 0 }).rows;
  const matching = all.filter((raw) => {
    const email = (JSON.parse(raw) as { email_address?: unknown }).email_address;
    return typeof email === 'string' && emails.has(email.toLowerCase());
  });
  return { rows: matching.slice(query.offset, query.offset + query.limit), totalCount: matching.length };
}
