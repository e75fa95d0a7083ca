import { INVITATION_STATUSES, type InvitationStatus } from '../clerk/types.ts';
import { invalidParamBody } from '../clerk/errors.ts';
import type { ClerkErrorJSON } from '../clerk/types.ts';

export const LIST_LIMIT = { min: 1, max: 500, default: 10 } as const;
export const ORDER_FIELDS = ['created_at', 'email_address'] as const;

export interface ListQuery {
  organizationId: string;
  statuses: InvitationStatus[];
  limit: number;
  offset: number;
  orderBy: { column: (typeof ORDER_FIELDS)[number]; direction: 'asc' | 'desc' };
}

/** A list parameter BAPI would answer 422 for. */
export class InvalidListParamError extends Error {
  constructor(
    readonly paramName: string,
    message: string,
  ) {
    super(message);
  }
  toClerkJSON(): ClerkErrorJSON {
    return invalidParamBody(this.paramName, this.message);
  }
}

export interface RawListParams {
  organizationId: string;
  status?: string | readonly string[] | undefined;
  limit?: number | string | undefined;
  offset?: number | string | undefined;
  orderBy?: string | undefined;
}

/** Applies BAPI's defaults and bounds for the per-organization invitation list. */
export function parseListParams(p: RawListParams): ListQuery {
  const statuses = p.status === undefined ? [] : [p.status].flat();
  for (const s of statuses) {
    if (!(INVITATION_STATUSES as readonly string[]).includes(s)) {
      throw new InvalidListParamError('status', `status must be one of ${INVITATION_STATUSES.join(', ')}`);
    }
  }
  const limit = integerParam('limit', p.limit, LIST_LIMIT.default, LIST_LIMIT.min, LIST_LIMIT.max);
  const offset = integerParam('offset', p.offset, 0, 0, Number.MAX_SAFE_INTEGER);
  const order = p.orderBy ?? '-created_at';
  const match = /^([+-]?)(created_at|email_address)$/.exec(order);
  if (!match) {
    throw new InvalidListParamError('order_by', 'order_by must be created_at or email_address, optionally prefixed with + or -');
  }
  return {
    organizationId: p.organizationId,
    statuses: statuses as InvitationStatus[],
    limit,
    offset,
    orderBy: { column: match[2] as ListQuery['orderBy']['column'], direction: match[1] === '-' ? 'desc' : 'asc' },
  };
}

function integerParam(name: string, value: number | string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined || value === '') return fallback;
  const n = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new InvalidListParamError(name, `${name} must be an integer between ${min} and ${max}`);
  }
  return n;
}
