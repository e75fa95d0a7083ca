import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { authorizationHeaderInvalidBody, secretKeyInvalidBody } from '../clerk/error-bodies.ts';
import { sendJson } from './json-reply.ts';

/** What `readApiKeys` reads from the configuration (a `Config` fits). */
export interface ApiKeySource {
  mirrorApiKey?: string | undefined;
  clerk: { secretKey?: string | undefined };
}

export const NO_CREDENTIAL_MESSAGE = 'the read API needs MIRROR_API_KEY or CLERK_SECRET_KEY: refusing to serve without a credential';

/**
 * The bearer tokens the read API accepts: `MIRROR_API_KEY` and `CLERK_SECRET_KEY`, whichever
 * are set (the secret key so that an unchanged Clerk SDK pointed at the mirror is accepted).
 *
 * @throws Error when neither is set: the read API fails closed rather than serve without a credential.
 */
export function readApiKeys(config: ApiKeySource): string[] {
  const keys = [config.mirrorApiKey, config.clerk.secretKey].filter((k): k is string => typeof k === 'string' && k.length > 0);
  if (keys.length === 0) throw new Error(NO_CREDENTIAL_MESSAGE);
  return [...new Set(keys)];
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

// RFC 7235: the scheme is case-insensitive; one or more spaces, then the token (token68 has no spaces).
const BEARER = /^bearer +([^\s]+) *$/i;

/** The token of an `Authorization: Bearer <token>` header, or undefined for any other shape. */
export function bearerToken(header: string | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  return BEARER.exec(header)?.[1];
}

/** The password of an `Authorization: Basic <base64(user:password)>` header (any user name), or undefined. */
export function basicPassword(header: string | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^basic +([A-Za-z0-9+/=]+) *$/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}

export interface BearerAuthOptions {
  /**
   * Also accept HTTP Basic auth with one of the keys as the password, and challenge with
   * `WWW-Authenticate: Basic realm="<realm>"`, so a browser prompts for it (the dashboard).
   * @defaultValue undefined (Bearer only)
   */
  basicRealm?: string;
}

/** What a request's credential is: one of the keys, not `Bearer <token>` at all, or a token that is no key. */
export type CredentialVerdict = 'accepted' | 'malformed' | 'refused';

/**
 * A Fastify `onRequest` hook (callback style: no promise per request on the read path) that
 * lets a request through only with `Authorization: Bearer <one of keys>`, and otherwise
 * answers 401 with Clerk's error JSON: `authorization_header_format_invalid` when the header
 * is missing or not a bearer, `clerk_key_invalid` for a token that is not a key, as BAPI does.
 * `check` answers the same question without replying.
 */
export interface BearerAuthHook {
  (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void;
  /** True when the request carries one of the keys (a Fastify or a bare node:http request). */
  check(req: { headers: IncomingHttpHeaders }): boolean;
  /** Sends the 401 for `req`'s credential (with its `WWW-Authenticate` challenge). */
  refuse(req: { headers: IncomingHttpHeaders }, reply: FastifyReply): FastifyReply;
}

/**
 * Builds the hook. Both sides are hashed with SHA-256 before `timingSafeEqual`, so neither
 * the length of a key nor how many leading characters a guess gets right shows in the
 * timing; every key is compared on every request, so which key matched does not show either.
 *
 * @throws Error when `keys` holds no non-empty key (fail closed).
 */
export function bearerAuth(keys: readonly string[], { basicRealm }: BearerAuthOptions = {}): BearerAuthHook {
  const digests = keys.filter((k) => typeof k === 'string' && k.length > 0).map(digest);
  if (digests.length === 0) throw new Error(NO_CREDENTIAL_MESSAGE);
  const challenge = basicRealm === undefined ? 'Bearer' : `Basic realm="${basicRealm}", charset="UTF-8"`;
  const verdict = (req: { headers: IncomingHttpHeaders }): CredentialVerdict => {
    const header = req.headers.authorization;
    const token = bearerToken(header) ?? (basicRealm === undefined ? undefined : basicPassword(header));
    if (token === undefined) return 'malformed';
    const presented = digest(token);
    let ok = false;
    for (const d of digests) ok = timingSafeEqual(presented, d) || ok;
    return ok ? 'accepted' : 'refused';
  };
  const send = (v: CredentialVerdict, reply: FastifyReply) =>
    sendJson(reply.header('www-authenticate', challenge), 401, v === 'malformed' ? authorizationHeaderInvalidBody() : secretKeyInvalidBody());
  const hook = (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
    const v = verdict(req);
    if (v === 'accepted') done();
    else send(v, reply);
  };
  return Object.assign(hook, { check: (req: { headers: IncomingHttpHeaders }) => verdict(req) === 'accepted', refuse: (req: { headers: IncomingHttpHeaders }, reply: FastifyReply) => send(verdict(req), reply) });
}
