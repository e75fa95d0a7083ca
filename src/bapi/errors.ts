/**
 * Every way a BAPI call can fail, sorted by what the caller should do about it. Messages are
 * built only from our own words, status codes, Clerk error codes and resource ids, never from
 * Clerk's free-text messages (they may quote an invitee's e-mail address) nor the secret key,
 * so an error can be logged as it is.
 */

import { redactEmailAddresses } from '../clerk/email-address.ts';
import { redactSecretKeys } from '../clerk/secret-key.ts';

export type BapiErrorKind = 'not_found' | 'rate_limited' | 'retryable' | 'fatal';

export interface BapiErrorDetails {
  /** HTTP status, absent when no answer arrived (timeout, network error) or no request was made. */
  status?: number;
  /** `clerk_trace_id` of the error body (or the `cf-ray` header), for Clerk support. */
  clerkTraceId?: string;
  /** The `code` of each entry of Clerk's `errors` array, e.g. `resource_not_found`. */
  codes?: string[];
  cause?: unknown;
}

export abstract class BapiError extends Error {
  abstract readonly kind: BapiErrorKind;
  readonly status?: number;
  readonly clerkTraceId?: string;
  readonly codes: string[];

  constructor(message: string, details: BapiErrorDetails = {}) {
    super(redact(message), details.cause === undefined ? undefined : { cause: details.cause });
    this.status = details.status;
    this.clerkTraceId = details.clerkTraceId;
    this.codes = details.codes ?? [];
  }
}

/** 404: the invitation or its organization does not exist (or the id cannot be a Clerk id). */
export class BapiNotFoundError extends BapiError {
  override name = 'BapiNotFoundError';
  readonly kind = 'not_found' as const;
}

/** 429: the instance's budget is spent; nothing should be sent for `retryAfterMs`. */
export class BapiRateLimitedError extends BapiError {
  override name = 'BapiRateLimitedError';
  readonly kind = 'rate_limited' as const;
  constructor(
    message: string,
    readonly retryAfterMs: number,
    details: BapiErrorDetails = {},
  ) {
    super(message, details);
  }
}

/** Transient: 5xx, 408, timeouts and network failures. The same request may succeed later. */
export class BapiRetryableError extends BapiError {
  override name = 'BapiRetryableError';
  readonly kind = 'retryable' as const;
}

/**
 * Retrying will not help: a wrong key (401/403), a request BAPI refuses (other 4xx), or an
 * answer that is not what BAPI sends (malformed 2xx, a 404 without Clerk's error body).
 */
export class BapiFatalError extends BapiError {
  override name = 'BapiFatalError';
  readonly kind = 'fatal' as const;
}

/**
 * What to do about any error thrown while talking to BAPI. Errors that are not ours are
 * fatal: they are bugs, and retrying a bug only hides it.
 */
export function classifyError(err: unknown): BapiErrorKind {
  return err instanceof BapiError ? err.kind : 'fatal';
}

/** How a failed call is counted: its HTTP status, or its kind when no answer came. */
export function statusOf(err: unknown): string {
  return String((err instanceof BapiError ? err.status : undefined) ?? classifyError(err));
}

/** Last line of defence for messages: masks anything shaped like an e-mail address or a Clerk secret key. */
export function redact(text: string): string {
  return redactEmailAddresses(redactSecretKeys(text), '[redacted e-mail]');
}
