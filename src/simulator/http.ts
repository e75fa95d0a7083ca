import type { IncomingMessage, ServerResponse } from 'node:http';
import { clerkTraceId } from '../clerk/error-bodies.ts';
import type { ClerkErrorJSON } from '../clerk/types.ts';
import { SimulatorError, badRequest, invalidParam } from './errors.ts';

export interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface RequestParts {
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
}

export type Handler<C> = (req: RequestParts & C) => Reply | Promise<Reply>;

/** Handlers keyed by `METHOD /path/:param`, so every route is visible in one table. */
export type RouteTable<C> = Record<string, Handler<C>>;

interface CompiledRoute<C> {
  key: string;
  method: string;
  pattern: RegExp;
  names: string[];
  handler: Handler<C>;
}

export type Match<C> = { key: string; handler: Handler<C>; params: Record<string, string> };

export class Router<C> {
  private readonly routes: CompiledRoute<C>[];

  constructor(table: RouteTable<C>) {
    this.routes = Object.entries(table).map(([key, handler]) => {
      const [method, path] = key.split(' ') as [string, string];
      const names: string[] = [];
      const source = path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:([a-z_]+)/g, (_, name: string) => {
        names.push(name);
        return '([^/]+)';
      });
      return { key, method, pattern: new RegExp(`^${source}/?$`), names, handler };
    });
  }

  match(method: string, pathname: string): Match<C> | undefined {
    for (const r of this.routes) {
      if (r.method !== method) continue;
      const m = r.pattern.exec(pathname);
      if (!m) continue;
      const params: Record<string, string> = {};
      try {
        r.names.forEach((name, i) => (params[name] = decodeURIComponent(m[i + 1]!)));
      } catch {
        return undefined; // a malformed %-escape names no resource
      }
      return { key: r.key, handler: r.handler, params };
    }
    return undefined;
  }
}

export const ok = (body: unknown): Reply => ({ status: 200, body });

/**
 * The content type is exactly `application/json`: `@clerk/backend` parses a body as JSON only
 * when the header equals that string, so a `; charset=utf-8` suffix would hand it raw text.
 */
export function send(res: ServerResponse, reply: Reply): void {
  if (res.destroyed || res.headersSent) return;
  const payload = JSON.stringify(reply.body);
  res.writeHead(reply.status, { ...reply.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

/**
 * Clerk's error JSON with a fresh `clerk_trace_id`, as every BAPI refusal carries one. Not
 * drawn from the seeded PRNG: trace ids appear only on errors, and drawing them there would
 * shift every later seeded outcome depending on how many errors happened.
 */
export function errorReply(status: number, body: ClerkErrorJSON, headers?: Record<string, string>): Reply {
  return { status, body: { ...body, clerk_trace_id: clerkTraceId() }, headers };
}

export function toReply(err: unknown): Reply {
  if (err instanceof SimulatorError) return errorReply(err.status, err.body);
  if (err instanceof RangeError) return errorReply(422, invalidParam('body', err.message).body);
  throw err;
}

const MAX_BODY = 1_000_000;

/** The JSON body, or undefined when there is none. */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw badRequest('request_body_too_large', 'is too large', 'The request body is larger than 1 MB.');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw badRequest('malformed_request', 'is malformed', 'The request body is not valid JSON.');
  }
}

/** The body as an object of parameters (an absent body counts as empty). */
export function bodyObject(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw badRequest('malformed_request', 'is malformed', 'The request body must be a JSON object.');
  return body as Record<string, unknown>;
}

export function optionalString(b: Record<string, unknown>, name: string): string | undefined {
  const v = b[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalidParam(name, `${name} must be a string`);
  return v;
}

export function requiredString(b: Record<string, unknown>, name: string): string {
  const v = optionalString(b, name);
  if (v === undefined || v === '') {
    throw new SimulatorError(422, { errors: [{ code: 'form_param_missing', message: 'is missing', long_message: `${name} must be included.`, meta: { param_name: name } }] });
  }
  return v;
}

export function optionalObject(b: Record<string, unknown>, name: string): Record<string, unknown> | undefined {
  const v = b[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw invalidParam(name, `${name} must be a JSON object`);
  return v as Record<string, unknown>;
}

export function optionalNumber(b: Record<string, unknown>, name: string): number | undefined {
  const v = b[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidParam(name, `${name} must be a number`);
  return v;
}
