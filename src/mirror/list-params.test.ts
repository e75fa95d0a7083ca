import { describe, expect, it } from 'vitest';
import { InvalidListParamError, parseListQuery, sdkQuery, type ListQuery } from './list-params.ts';

const ORG = 'org_2abc';
const parse = (qs: string) => parseListQuery(ORG, new URLSearchParams(qs));

/** The error parseListQuery throws for `qs`, with its parameter, Clerk code and long message. */
function refusal(qs: string): { param: string; code: string | undefined; message: string | undefined } {
  try {
    parse(qs);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidListParamError);
    const e = err as InvalidListParamError;
    const first = e.toClerkJSON().errors[0];
    expect(first?.meta).toEqual({ param_name: e.paramName });
    expect(e.message).toBe(first?.long_message);
    return { param: e.paramName, code: first?.code, message: first?.long_message };
  }
  throw new Error(`${qs} was accepted`);
}

describe('parseListQuery', () => {
  it("without parameters: BAPI's defaults (10 newest first, any status and address)", () => {
    expect(parse('')).toStrictEqual<ListQuery>({
      organizationId: ORG,
      statuses: [],
      emailAddresses: [],
      limit: 10,
      offset: 0,
      orderBy: { column: 'created_at', direction: 'desc' },
    });
  });

  it('an empty value is the default, not a refusal', () => {
    expect(parse('limit=&offset=&order_by=')).toMatchObject({ limit: 10, offset: 0, orderBy: { column: 'created_at', direction: 'desc' } });
  });

  it('parses order_by: a field, ascending unless prefixed with "-"', () => {
    const order = (v: string) => parse(`order_by=${encodeURIComponent(v)}`).orderBy;
    expect(order('created_at')).toEqual({ column: 'created_at', direction: 'asc' });
    expect(order('+created_at')).toEqual({ column: 'created_at', direction: 'asc' });
    expect(order('-created_at')).toEqual({ column: 'created_at', direction: 'desc' });
    expect(order('email_address')).toEqual({ column: 'email_address', direction: 'asc' });
    expect(order('-email_address')).toEqual({ column: 'email_address', direction: 'desc' });
  });

  it('refuses an order_by on another field, or decorated, as BAPI does (422 form_param_value_invalid)', () => {
    for (const v of ['updated_at', '--created_at', 'created_at ', 'CREATED_AT', '-', 'created_at,email_address', 'role']) {
      expect(refusal(`order_by=${encodeURIComponent(v)}`)).toEqual({
        param: 'order_by',
        code: 'form_param_value_invalid',
        message: `${v} does not match one of the allowed values for parameter order_by`,
      });
    }
  });

  it('takes limit 1..500 and any offset from 0', () => {
    expect(parse('limit=1&offset=0')).toMatchObject({ limit: 1, offset: 0 });
    expect(parse('limit=500&offset=123456')).toMatchObject({ limit: 500, offset: 123_456 });
  });

  it('refuses a limit or offset that is not a whole number (form_param_type_invalid) or out of range (form_param_value_invalid)', () => {
    for (const v of ['abc', '1.5', '-1', '+3', '1e2', ' 5', '0x10']) {
      expect(refusal(`limit=${encodeURIComponent(v)}`)).toEqual({ param: 'limit', code: 'form_param_type_invalid', message: '`limit` must be a `integer`.' });
      expect(refusal(`offset=${encodeURIComponent(v)}`)).toMatchObject({ param: 'offset', code: 'form_param_type_invalid' });
    }
    expect(refusal('limit=0')).toMatchObject({ param: 'limit', code: 'form_param_value_invalid' });
    expect(refusal('limit=501')).toMatchObject({ param: 'limit', code: 'form_param_value_invalid' });
    expect(refusal('offset=99999999999999999999')).toMatchObject({ param: 'offset', code: 'form_param_value_invalid' });
  });

  it('refuses limit, offset and order_by given twice (form_param_duplicate)', () => {
    for (const name of ['limit', 'offset', 'order_by']) {
      const v = name === 'order_by' ? 'created_at' : '5';
      expect(refusal(`${name}=${v}&${name}=${v}`)).toEqual({ param: name, code: 'form_param_duplicate', message: `${name} included multiple times. There should only be one.` });
    }
  });

  it('status may repeat and be comma-separated; duplicates fold, an unknown one is refused', () => {
    expect(parse('status=accepted&status=revoked,accepted').statuses).toEqual(['accepted', 'revoked']);
    expect(parse('status=pending,expired').statuses).toEqual(['pending', 'expired']);
    expect(refusal('status=pending,cancelled')).toEqual({
      param: 'status',
      code: 'form_param_value_invalid',
      message: 'cancelled does not match one of the allowed values for parameter status',
    });
    expect(refusal('status=')).toMatchObject({ param: 'status' });
  });

  it('email_address may repeat: lowercased, duplicates and empty values dropped', () => {
    expect(parse('email_address=Ada%40Example.com&email_address=ada%40example.com&email_address=&email_address=grace%40example.org').emailAddresses).toEqual([
      'ada@example.com',
      'grace@example.org',
    ]);
  });
});

describe('sdkQuery', () => {
  it('sends what @clerk/backend sends: keys snake_cased, arrays repeated, the organization id left to the path', () => {
    const q = sdkQuery({ organizationId: ORG, status: ['pending', 'accepted'], orderBy: '-email_address', limit: 20, offset: 40, emailAddress: ['a@example.com'] } as { organizationId: string });
    expect([...q]).toEqual([
      ['status', 'pending'],
      ['status', 'accepted'],
      ['order_by', '-email_address'],
      ['limit', '20'],
      ['offset', '40'],
      ['email_address', 'a@example.com'],
    ]);
  });

  it('leaves out falsy values (limit 0, an empty orderBy, NaN, undefined), so the defaults apply', () => {
    const q = sdkQuery({ organizationId: ORG, limit: 0, offset: Number.NaN, orderBy: '', status: undefined } as { organizationId: string });
    expect(q.toString()).toBe('');
    expect(parseListQuery(ORG, q)).toMatchObject({ limit: 10, offset: 0, orderBy: { column: 'created_at', direction: 'desc' } });
  });

  it('round-trips through parseListQuery as the same call to BAPI would parse', () => {
    const q = sdkQuery({ organizationId: ORG, status: ['revoked'], orderBy: 'created_at', limit: 3 } as { organizationId: string });
    expect(parseListQuery(ORG, q)).toStrictEqual<ListQuery>({
      organizationId: ORG,
      statuses: ['revoked'],
      emailAddresses: [],
      limit: 3,
      offset: 0,
      orderBy: { column: 'created_at', direction: 'asc' },
    });
  });
});
