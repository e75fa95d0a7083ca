import { INVITATION_STATUSES, type InvitationStatus } from '../clerk/types.ts';
import { paramDuplicateBody, paramTypeInvalidBody, paramValueInvalidBody } from '../clerk/error-bodies.ts';
import type { ClerkErrorJSON } from '../clerk/types.ts';

export const LIST_LIMIT = { min: 1, max: 500, default: 10 } as const;
/** What `order_by` may name, after an optional `+` (ascending) or `-` (descending). */
export const ORDER_FIELDS = ['created_at', 'email_address'] as const;
export type OrderField = (typeof ORDER_FIELDS)[number];

export interface ListQuery {
  organizationId: string;
  statuses: InvitationStatus[];
  /** Exact addresses, lowercased (Clerk stores invitation addresses lowercased); empty: any. */
  emailAddresses: string[];
  limit: number;
  offset: number;
  orderBy: { column: OrderField; direction: 'asc' | 'desc' };
}

/** A list parameter BAPI would answer 422 for, with the body BAPI sends. */
export class InvalidListParamError extends Error {
  constructor(
    readonly paramName: string,
    readonly body: ClerkErrorJSON,
  ) {
    super(body.errors[0]?.long_message ?? `invalid ${paramName}`);
  }
  toClerkJSON(): ClerkErrorJSON {
    return this.body;
  }
}

const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * The query string `@clerk/backend` sends for `params`, built as its request layer builds it:
 * keys snake_cased, a falsy value (`limit: 0`, `orderBy: ''`, `NaN`) not sent at all, arrays
 * repeated. The library parses that, so a call answers what the same call to BAPI would.
 */
export function sdkQuery(params: { organizationId: string }): URLSearchParams {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params) as [string, unknown][]) {
    if (!value || key === 'organizationId') continue;
    for (const v of [value].flat()) q.append(snake(key), String(v));
  }
  return q;
}

/**
 * BAPI's per-organization invitation list parameters, with its defaults and its refusals:
 * `status` and `email_address` may repeat (`status` also comma-separated), the others may not.
 */
export function parseListQuery(organizationId: string, q: URLSearchParams): ListQuery {
  const statuses = q.getAll('status').flatMap((s) => s.split(','));
  for (const s of statuses) {
    if (!(INVITATION_STATUSES as readonly string[]).includes(s)) throw new InvalidListParamError('status', paramValueInvalidBody('status', s));
  }
  const emailAddresses = [...new Set(q.getAll('email_address').filter((e) => e !== '').map((e) => e.toLowerCase()))];
  const limit = integerParam(q, 'limit', LIST_LIMIT.default, LIST_LIMIT.min, LIST_LIMIT.max);
  const offset = integerParam(q, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
  const order = once(q, 'order_by') || '-created_at';
  const signed = order.startsWith('+') || order.startsWith('-');
  const column = signed ? order.slice(1) : order;
  if (!(ORDER_FIELDS as readonly string[]).includes(column)) throw new InvalidListParamError('order_by', paramValueInvalidBody('order_by', order));
  return {
    organizationId,
    statuses: [...new Set(statuses)] as InvitationStatus[],
    emailAddresses,
    limit,
    offset,
    orderBy: { column: column as OrderField, direction: order.startsWith('-') ? 'desc' : 'asc' },
  };
}

function once(q: URLSearchParams, name: string): string | undefined {
  const all = q.getAll(name);
  if (all.length > 1) throw new InvalidListParamError(name, paramDuplicateBody(name));
  return all[0];
}

/**
 * An integer parameter. Out of range (`limit` 0 or above 500 sent by hand) answers 422 as
 * before; whether BAPI answers 422 or its default page there is unconfirmed (README).
 */
function integerParam(q: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const value = once(q, name);
  if (value === undefined || value === '') return fallback;
  if (!/^\d+$/.test(value)) throw new InvalidListParamError(name, paramTypeInvalidBody(name, 'integer'));
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidListParamError(name, paramValueInvalidBody(name, value));
  return n;
}
