import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import type { FastifyServerFactory } from 'fastify';
import { apiVersionProblem } from '../clerk/error-bodies.ts';
import { INVITATION_ID, ORGANIZATION_ID } from '../clerk/ids.ts';
import type { MirrorReader } from '../mirror/reader.ts';
import type { PipelineStats } from '../stats.ts';
import type { BearerAuthHook } from './auth.ts';
import { JSON_CONTENT_TYPE } from './json-reply.ts';

/** Answers the request and returns true, or returns false and leaves it untouched. */
export type FastHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export interface FastInvitationReadOptions {
  reader: MirrorReader;
  auth: Pick<BearerAuthHook, 'check'>;
  /** True once the app is closing: every request then goes to Fastify, which answers 503. */
  isClosing: () => boolean;
  /** Where answered reads are counted and timed (`/metrics`). */
  stats?: Pick<PipelineStats, 'readAnswered'>;
}

const PATH = /^\/v1\/organizations\/([^/?#]+)\/invitations\/([^/?#]+)$/;

/**
 * The single-invitation read, other services' hottest call, answered before Fastify's
 * routing, hooks and reply pipeline (a large share of a request's CPU: bench/profile-read.ts).
 * It takes only the plain success: a GET of exactly that path (no query, ids of Clerk's
 * shape, so no decoding can differ), the bearer accepted, a well-formed or absent
 * `Clerk-API-Version`, a live row of that organization. Everything else (400, 401, 404, 422, HEAD, odd URLs, shutdown, a failing lookup) falls through
 * to the Fastify route, which stays the one definition of those answers;
 * test/fast-read.test.ts checks that both paths send the same status, headers and bytes.
 */
export function fastInvitationRead({ reader, auth, isClosing, stats }: FastInvitationReadOptions): FastHandler {
  let lastGoodVersion: string | undefined;
  return (req, res) => {
    if (req.method !== 'GET' || isClosing()) return false;
    const started = performance.now();
    const m = PATH.exec(req.url ?? '');
    if (!m) return false;
    const [, organizationId, invitationId] = m as unknown as [string, string, string];
    if (!ORGANIZATION_ID.test(organizationId) || !INVITATION_ID.test(invitationId) || !auth.check(req)) return false;
    const version = req.headers['clerk-api-version'];
    if (version !== undefined && version !== lastGoodVersion) {
      if (apiVersionProblem(version) !== undefined) return false;
      // Every SDK request carries the same version: check it once.
      lastGoodVersion = version as string;
    }
    let raw: string | undefined;
    try {
      raw = reader.findRaw(organizationId, invitationId);
    } catch {
      // A throw here would escape the server's 'request' listener and end the process;
      // Fastify's route meets the same error and answers (and logs) it as for any route.
      return false;
    }
    if (raw === undefined) return false;
    const body = Buffer.from(raw, 'utf8');
    res.writeHead(200, { 'content-type': JSON_CONTENT_TYPE, 'content-length': body.length });
    res.end(body);
    stats?.readAnswered('invitation', 200, performance.now() - started);
    return true;
  };
}

/** The options Fastify hands a `serverFactory` that its own servers get. */
interface ServerTimeouts {
  http?: ServerOptions;
  keepAliveTimeout?: number;
  requestTimeout?: number;
  connectionTimeout?: number;
  maxRequestsPerSocket?: number;
}

/**
 * A Fastify `serverFactory` that offers each request to `fast` first. It sets the server
 * timeouts Fastify sets on the servers it creates itself, so the factory changes nothing else.
 */
export function serverWithFastPath(fast: FastHandler): FastifyServerFactory {
  return (handler, factoryOptions) => {
    const opts = factoryOptions as ServerTimeouts;
    const server: Server = createServer(opts.http ?? {}, (req, res) => {
      if (!fast(req, res)) handler(req, res);
    });
    if (opts.keepAliveTimeout !== undefined) server.keepAliveTimeout = opts.keepAliveTimeout;
    if (opts.requestTimeout !== undefined) server.requestTimeout = opts.requestTimeout;
    if (opts.connectionTimeout !== undefined) server.setTimeout(opts.connectionTimeout);
    if (opts.maxRequestsPerSocket) server.maxRequestsPerSocket = opts.maxRequestsPerSocket;
    return server;
  };
}
