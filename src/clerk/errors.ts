import { ClerkAPIResponseError } from '@clerk/backend/errors';
import type { ClerkErrorJSON } from './types.ts';

/** Clerk's error body for a missing resource, as BAPI sends it. */
export function notFoundBody(): ClerkErrorJSON {
  return { errors: [{ code: 'resource_not_found', message: 'not found', long_message: 'Resource not found' }] };
}

/** Clerk's error body for a request parameter BAPI would refuse (422). */
export function invalidParamBody(paramName: string, longMessage: string): ClerkErrorJSON {
  return {
    errors: [
      { code: 'form_param_value_invalid', message: 'is invalid', long_message: longMessage, meta: { param_name: paramName } },
    ],
  };
}

/** Clerk's error body for a missing or wrong secret key (401). */
export function unauthorizedBody(): ClerkErrorJSON {
  return {
    errors: [
      {
        code: 'authorization_invalid',
        message: 'Unauthorized request',
        long_message: 'You are not authorized to perform this request',
      },
    ],
  };
}

const STATUS_TEXT: Record<number, string> = { 401: 'Unauthorized', 404: 'Not Found', 422: 'Unprocessable Entity', 429: 'Too Many Requests' };

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
