import { randomBytes } from 'node:crypto';
import { ClerkAPIResponseError } from '@clerk/backend/errors';
import type { ClerkErrorJSON } from './types.ts';

/**
 * Clerk's error bodies for the answers the mirror (and the simulator, standing in for BAPI)
 * gives, with codes and long messages from Clerk's error catalogue (clerk-reference.md). Each
 * body gets a fresh `clerk_trace_id`, as every BAPI error carries one.
 */

/** A trace id in BAPI's form (32 hex digits), so support tooling that logs it finds one. */
export function clerkTraceId(): string {
  return randomBytes(16).toString('hex');
}

type ClerkError = ClerkErrorJSON['errors'][number];

function body(error: ClerkError): ClerkErrorJSON {
  return { errors: [error], clerk_trace_id: clerkTraceId() };
}

/** 404: the invitation (or path) does not exist. */
export function notFoundBody(): ClerkErrorJSON {
  return body({ code: 'resource_not_found', message: 'not found', long_message: 'Resource not found' });
}

/** 404: the organization does not exist (BAPI's answer for its invitations and their list). */
export function organizationNotFoundBody(): ClerkErrorJSON {
  return body({ code: 'resource_not_found', message: 'not found', long_message: 'Given organization not found.' });
}

/** 401: no `Authorization` header, or not `Bearer <key>`. */
export function authorizationHeaderInvalidBody(): ClerkErrorJSON {
  return body({
    code: 'authorization_header_format_invalid',
    message: 'Invalid Authorization header format',
    long_message: "Invalid Authorization header format. Must be 'Bearer <YOUR_API_KEY>'",
  });
}

/** 401: a well-formed bearer that is not an accepted key. */
export function secretKeyInvalidBody(): ClerkErrorJSON {
  return body({
    code: 'clerk_key_invalid',
    message: 'Secret Key is invalid',
    long_message: 'The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct.',
  });
}

/** 422: a parameter whose value is not one BAPI allows. */
export function paramValueInvalidBody(paramName: string, value: string): ClerkErrorJSON {
  return body({
    code: 'form_param_value_invalid',
    message: 'is invalid',
    long_message: `${value} does not match one of the allowed values for parameter ${paramName}`,
    meta: { param_name: paramName },
  });
}

/** 422: a parameter of the wrong type (`limit=abc`). */
export function paramTypeInvalidBody(paramName: string, paramType: string): ClerkErrorJSON {
  return body({ code: 'form_param_type_invalid', message: 'is invalid', long_message: `\`${paramName}\` must be a \`${paramType}\`.`, meta: { param_name: paramName } });
}

/** 422: a parameter given twice that BAPI takes once. */
export function paramDuplicateBody(paramName: string): ClerkErrorJSON {
  return body({
    code: 'form_param_duplicate',
    message: 'is duplicated',
    long_message: `${paramName} included multiple times. There should only be one.`,
    meta: { param_name: paramName },
  });
}

/** 400: a `Clerk-API-Version` header that is not a version. */
export function apiVersionInvalidBody(reason: string): ClerkErrorJSON {
  return body({ code: 'api_version_invalid', message: 'Invalid API version', long_message: `Invalid Clerk API version: ${reason}` });
}

/**
 * Why a `Clerk-API-Version` value is not one (undefined: it is, or it is absent). Versions are
 * dates (`2026-05-12`); which dates Clerk knows is Clerk's business, so only the form is checked.
 */
export function apiVersionProblem(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return 'the header may be given only once';
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (!m) return 'expected a date in the form YYYY-MM-DD';
  const d = new Date(`${value}T00:00:00Z`);
  if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== value) return 'expected a date in the form YYYY-MM-DD';
  return undefined;
}

/** The answer for a path under `/v1` that the mirror does not serve: it exists at Clerk, ask Clerk. */
export function notMirroredBody(method: string, path: string): ClerkErrorJSON {
  return body({
    code: 'not_mirrored',
    message: 'not served by the mirror',
    long_message: `The mirror does not serve ${method} ${path}: call Clerk's Backend API for it. The mirror serves GET of an organization invitation, an organization's invitation list and its pending list.`,
  });
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 422: 'Unprocessable Entity', 429: 'Too Many Requests', 501: 'Not Implemented' };

/**
 * The error `@clerk/backend` throws for a non-2xx answer with `body`, built the way its
 * request layer builds it (message = the HTTP status text), so callers' existing
 * `isClerkAPIResponseError(e) && e.status === 404` checks keep working.
 */
export function toClerkAPIResponseError(status: number, body: ClerkErrorJSON, retryAfter?: number): ClerkAPIResponseError {
  return new ClerkAPIResponseError(STATUS_TEXT[status] ?? '', {
    data: body.errors,
    status,
    clerkTraceId: body.clerk_trace_id ?? '',
    retryAfter,
  });
}
