import { INVITATION_STATUSES } from '../clerk/types.ts';
import { duplicateParam, invalidParamType, paramValueInvalid } from './errors.ts';

/**
 * BAPI's list parameters, parsed independently of the mirror's own parser on purpose: the
 * simulator is the oracle the mirror is tested against, so sharing code would hide bugs.
 */

export interface Page<T> {
  data: T[];
  total_count: number;
}

export interface ListParams {
  limit: number;
  offset: number;
  orderBy: { field: string; direction: 1 | -1 };
}

export function parseListParams(q: URLSearchParams, orderFields: readonly string[]): ListParams {
  const limit = integer(q, 'limit', 10, 1, 500);
  const offset = integer(q, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
  const raw = single(q, 'order_by') || '-created_at';
  const match = /^([+-]?)(.+)$/.exec(raw);
  if (!match || !orderFields.includes(match[2]!)) throw paramValueInvalid('order_by', raw);
  return { limit, offset, orderBy: { field: match[2]!, direction: match[1] === '-' ? -1 : 1 } };
}

/** `status` may repeat; BAPI refuses values that are not invitation statuses. */
export function parseStatuses(q: URLSearchParams): Set<string> | undefined {
  const values = q.getAll('status').flatMap((v) => v.split(','));
  if (values.length === 0) return undefined;
  for (const v of values) {
    if (!(INVITATION_STATUSES as readonly string[]).includes(v)) throw paramValueInvalid('status', v);
  }
  return new Set(values);
}

/** Sorts (ties broken by id, so pages never overlap or skip) and slices one page. */
export function paginate<T extends { id: string }>(items: T[], p: ListParams): Page<T> {
  const { field, direction } = p.orderBy;
  const sorted = [...items].sort((a, b) => {
    const x = (a as Record<string, unknown>)[field];
    const y = (b as Record<string, unknown>)[field];
    const c = compare(x, y) || compare(a.id, b.id);
    return c * direction;
  });
  return { data: sorted.slice(p.offset, p.offset + p.limit), total_count: items.length };
}

function compare(x: unknown, y: unknown): number {
  if (typeof x === 'number' && typeof y === 'number') return x - y;
  const a = String(x ?? '');
  const b = String(y ?? '');
  return a < b ? -1 : a > b ? 1 : 0;
}

export function single(q: URLSearchParams, name: string): string | undefined {
  const all = q.getAll(name);
  if (all.length > 1) throw duplicateParam(name);
  return all[0];
}

function integer(q: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const raw = single(q, name);
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw)) throw invalidParamType(name, 'integer');
  const n = Number(raw);
  // Above 500 for `limit`: whether BAPI refuses or answers its default page is unconfirmed.
  if (!Number.isSafeInteger(n) || n < min || n > max) throw paramValueInvalid(name, raw);
  return n;
}
