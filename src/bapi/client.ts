import { readFileSync } from 'node:fs';
import { keepAliveTransport, type BapiResponse, type BapiTransport } from './transport.ts';
import { z } from 'zod';
import {
  BapiFatalError,
  BapiNotFoundError,
  BapiRateLimitedError,
  BapiRetryableError,
  type BapiErrorDetails,
} from './errors.ts';
import { invitationJsonSchema, invitationListSchema, type InvitationJSON } from '../clerk/types.ts';

/** The BAPI version `@clerk/backend` 3.x pins; answers' shapes depend on it. */
export const CLERK_API_VERSION = '2026-05-12';

export const USER_AGENT = `clerk-invitation-mirror/${packageVersion()} (@clerk/backend compatible)`;

/** An organization as BAPI sends it: only the id is checked; everything else passes through. */
export const organizationSchema = z.looseObject({ id: z.string().min(1) });

/** `GET /v1/organizations`: only the id is needed; everything else passes through. */
export const organizationListSchema = z.looseObject({
  data: z.array(z.looseObject({ id: z.string().min(1) })),
  total_count: z.number().int().nonnegative(),
});

export interface BapiClientOptions {
  /** BAPI's origin, e.g. `https://api.clerk.com` (no `/v1`). */
  apiUrl: string;
  secretKey: string;
  /** Per-request limit covering connect, headers and body. @defaultValue 10_000 */
  timeoutMs?: number;
  /** How requests go out. @defaultValue keep-alive `node:http`/`node:https` agents of this client */
  transport?: BapiTransport;
  /** Clock for `receivedAt` and HTTP-date `Retry-After`. @defaultValue Date.now */
  now?: () => number;
}

export interface InvitationListParams {
  /** 1–500; BAPI's default is 10. */
  limit?: number;
  offset?: number;
  /** Sent as repeated `status=` parameters. */
  status?: string[];
  /** `created_at` or `email_address`, optionally prefixed by `+`/`-`; BAPI's default is `-created_at`. */
  orderBy?: string;
}

export interface ListResult<T> {
  data: T[];
  totalCount: number;
  receivedAt: number;
}

/**
 * Calls BAPI over HTTP directly rather than through `@clerk/backend`: the mirror needs the
 * invitation's exact JSON text, a request timeout, and failures that say whether a retry can
 * help, none of which the SDK gives. Requests look like the SDK's (same headers, same
 * unencoded ids) so BAPI and the simulator cannot tell them apart.
 */
export class BapiClient {
  private readonly base: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly transport: BapiTransport;
  private readonly now: () => number;

  constructor(opts: BapiClientOptions) {
    let url: URL;
    try {
      url = new URL(opts.apiUrl);
    } catch {
      throw new BapiFatalError('BAPI client: apiUrl is not a URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new BapiFatalError('BAPI client: apiUrl must be http(s)');
    // A key with whitespace would make fetch throw an error that quotes the header, key included.
    if (!/^[\x21-\x7e]+$/.test(opts.secretKey)) throw new BapiFatalError('BAPI client: the secret key is empty or has invalid characters');
    this.base = `${opts.apiUrl.replace(/\/+$/, '')}/v1`;
    this.headers = {
      Authorization: `Bearer ${opts.secretKey}`,
      'Clerk-API-Version': CLERK_API_VERSION,
      'User-Agent': USER_AGENT,
      'Content-Type': 'application/json',
    };
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.transport = opts.transport ?? keepAliveTransport();
    this.now = opts.now ?? Date.now;
  }

  /**
   * The invitation exactly as received: `raw` is the body text, `invitation` its validated
   * parse (same key order as `raw`), `receivedAt` our clock when the body had arrived.
   */
  async getOrganizationInvitation(
    organizationId: string,
    invitationId: string,
  ): Promise<{ invitation: InvitationJSON; raw: string; receivedAt: number }> {
    assertPathSafeId(organizationId);
    assertPathSafeId(invitationId);
    const path = `/organizations/${organizationId}/invitations/${invitationId}`;
    const { text, status, receivedAt } = await this.get(path);
    const invitation = parseAnswer(text, invitationJsonSchema, path, status);
    // Storing another invitation under this one's key would corrupt the mirror silently.
    if (invitation.id !== invitationId || invitation.organization_id !== organizationId) {
      throw new BapiFatalError(`BAPI GET ${path} answered with a different invitation (${invitation.id})`, { status });
    }
    return { invitation, raw: text, receivedAt };
  }

  /**
   * `GET /v1/organizations/{organization_id}`: whether Clerk still has the organization (a 404
   * throws BapiNotFoundError, as for an invitation).
   */
  async getOrganization(organizationId: string): Promise<{ organization: { id: string }; raw: string; receivedAt: number }> {
    assertPathSafeId(organizationId);
    const path = `/organizations/${organizationId}`;
    const { text, status, receivedAt } = await this.get(path);
    const organization = parseAnswer(text, organizationSchema, path, status);
    if (organization.id !== organizationId) throw new BapiFatalError(`BAPI GET ${path} answered with a different organization (${organization.id})`, { status });
    return { organization, raw: text, receivedAt };
  }

  /** `GET /v1/organization_invitations`: every organization's invitations at once. */
  async listInstanceInvitations(p: InvitationListParams): Promise<ListResult<InvitationJSON>> {
    return this.list('/organization_invitations', invitationQuery(p), invitationListSchema);
  }

  /** `GET /v1/organizations/{organization_id}/invitations`. */
  async listOrganizationInvitations(organizationId: string, p: InvitationListParams): Promise<ListResult<InvitationJSON>> {
    assertPathSafeId(organizationId);
    return this.list(`/organizations/${organizationId}/invitations`, invitationQuery(p), invitationListSchema);
  }

  /** `GET /v1/organizations`; `orderBy` is `created_at` or `name`, optionally prefixed by `+`/`-`. */
  async listOrganizations(p: { limit?: number; offset?: number; orderBy?: string }): Promise<ListResult<{ id: string; [k: string]: unknown }>> {
    const q = pageQuery(p);
    if (p.orderBy !== undefined) q.set('order_by', p.orderBy);
    return this.list('/organizations', q, organizationListSchema);
  }

  private async list<T>(
    path: string,
    query: URLSearchParams,
    schema: z.ZodType<{ data: T[]; total_count: number }>,
  ): Promise<ListResult<T>> {
    const { text, status, receivedAt } = await this.get(path, query);
    const page = parseAnswer(text, schema, path, status);
    return { data: page.data, totalCount: page.total_count, receivedAt };
  }

  private async get(path: string, query?: URLSearchParams): Promise<{ text: string; status: number; receivedAt: number }> {
    const qs = query?.toString();
    const url = new URL(`${this.base}${path}${qs ? `?${qs}` : ''}`);
    let res: BapiResponse;
    try {
      res = await this.transport(url, this.headers, this.timeoutMs);
    } catch (err) {
      // No `cause`: keep whatever the error carries away from logs.
      if (isTimeout(err)) {
        throw new BapiRetryableError(`BAPI GET ${path} timed out after ${this.timeoutMs} ms`);
      }
      throw new BapiRetryableError(`BAPI GET ${path} failed on the network (${networkCode(err)})`);
    }
    const receivedAt = this.now();
    if (res.status >= 200 && res.status < 300) {
      let text: string;
      try {
        // Strict decoding: `raw` must be exactly the bytes Clerk sent, BOM and all, or rejected.
        text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(res.body);
      } catch {
        throw new BapiFatalError(`BAPI GET ${path} answered ${res.status} with a body that is not UTF-8`, { status: res.status });
      }
      return { text, status: res.status, receivedAt };
    }
    throw this.failure(path, res, new TextDecoder().decode(res.body));
  }

  private failure(path: string, res: BapiResponse, text: string): Error {
    const clerk = parseClerkError(text);
    const details: BapiErrorDetails = {
      status: res.status,
      clerkTraceId: clerk?.traceId ?? res.header('cf-ray') ?? undefined,
      codes: clerk?.codes,
    };
    const what = `BAPI GET ${path} answered ${res.status}${clerk?.codes.length ? ` (${clerk.codes.join(', ')})` : ''}`;
    const s = res.status;
    if (s === 404) {
      // A 404 without Clerk's error body comes from something that is not BAPI (a wrong
      // CLERK_API_URL); reading it as "gone" would tombstone every invitation.
      return clerk
        ? new BapiNotFoundError(what, details)
        : new BapiFatalError(`${what} without Clerk's error body; is the API URL right?`, details);
    }
    if (s === 429) return new BapiRateLimitedError(what, this.retryAfterMs(res.header('retry-after') ?? null), details);
    if (s === 408 || s >= 500) return new BapiRetryableError(what, details);
    if (s === 401 || s === 403) return new BapiFatalError(`${what}: the secret key was refused; check CLERK_SECRET_KEY`, details);
    return new BapiFatalError(what, details);
  }

  /** `Retry-After` in seconds (or an HTTP date), 1 s when missing or unreadable. */
  private retryAfterMs(header: string | null): number {
    const v = header?.trim() ?? '';
    if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
    const date = Date.parse(v);
    if (v !== '' && !Number.isNaN(date)) return Math.max(0, date - this.now());
    return 1000;
  }
}

/**
 * Ids go into the path unencoded, as the SDK sends them, so anything that could change the
 * path (separators, dot segments, percent-escapes, backslashes that URL parsing turns into
 * slashes) is refused before a request: no real Clerk id contains them.
 */
export function assertPathSafeId(id: string): void {
  if (id === '' || id === '.' || id.includes('..') || /[/\\?#%\s\p{Cc}]/u.test(id)) {
    throw new BapiNotFoundError(id === '' ? 'A valid resource ID is required.' : 'not a Clerk resource id; no request made');
  }
}

function invitationQuery(p: InvitationListParams): URLSearchParams {
  const q = pageQuery(p);
  for (const s of p.status ?? []) q.append('status', s);
  if (p.orderBy !== undefined) q.set('order_by', p.orderBy);
  return q;
}

function pageQuery(p: { limit?: number; offset?: number }): URLSearchParams {
  const q = new URLSearchParams();
  if (p.limit !== undefined) q.set('limit', String(p.limit));
  if (p.offset !== undefined) q.set('offset', String(p.offset));
  return q;
}

/**
 * Validates with `schema` but returns `JSON.parse`'s own objects: zod rebuilds objects with
 * its known keys first, and list items are stored re-serialized, so key order must survive.
 */
function parseAnswer<T>(text: string, schema: z.ZodType<T>, path: string, status: number): T {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new BapiFatalError(`BAPI GET ${path} answered ${status} with a body that is not JSON`, { status });
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    // Paths and issue codes only: zod messages may quote values, and values may be e-mail addresses.
    const issues = result.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.code}`);
    throw new BapiFatalError(`BAPI GET ${path} answered ${status} with an unexpected shape (${issues.join('; ')})`, { status });
  }
  return json as T;
}

function parseClerkError(text: string): { codes: string[]; traceId?: string } | undefined {
  try {
    const body = JSON.parse(text) as unknown;
    if (!body || typeof body !== 'object' || !Array.isArray((body as { errors?: unknown }).errors)) return undefined;
    const { errors, clerk_trace_id } = body as { errors: unknown[]; clerk_trace_id?: unknown };
    const codes = errors.flatMap((e) => (e && typeof e === 'object' && typeof (e as { code?: unknown }).code === 'string' ? [(e as { code: string }).code] : []));
    return { codes, traceId: typeof clerk_trace_id === 'string' && clerk_trace_id !== '' ? clerk_trace_id : undefined };
  } catch {
    return undefined;
  }
}

function isTimeout(err: unknown): boolean {
  return err instanceof Error && err.name === 'TimeoutError';
}

/** The errno-style code (ECONNREFUSED, ECONNRESET, UND_ERR_SOCKET…) undici hides in `cause`. */
function networkCode(err: unknown): string {
  let e: unknown = err;
  for (let i = 0; i < 5 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z0-9_]+$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return 'unknown error';
}

/** This package's version (package.json), or 0.0.0 when it cannot be read. */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}
