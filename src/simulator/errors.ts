import {
  authorizationHeaderInvalidBody,
  notFoundBody,
  organizationNotFoundBody,
  paramDuplicateBody,
  paramTypeInvalidBody,
  paramValueInvalidBody,
  secretKeyInvalidBody,
} from '../clerk/error-bodies.ts';
import type { ClerkErrorJSON } from '../clerk/types.ts';

/**
 * A refusal in Clerk's error JSON. Store operations and route handlers throw it; the server
 * turns it into the answer, so the control API and BAPI routes refuse in the same shape.
 */
export class SimulatorError extends Error {
  constructor(
    readonly status: number,
    readonly body: ClerkErrorJSON,
  ) {
    super(body.errors[0]?.long_message ?? body.errors[0]?.message ?? `HTTP ${status}`);
  }
}

export const notFound = (): SimulatorError => new SimulatorError(404, notFoundBody());
export const organizationNotFound = (): SimulatorError => new SimulatorError(404, organizationNotFoundBody());
/** BAPI's 401s: no or malformed `Authorization` header, or a bearer that is not the instance's key. */
export const unauthorized = (header: string | undefined): SimulatorError =>
  new SimulatorError(401, header === undefined || !/^Bearer \S+$/.test(header) ? authorizationHeaderInvalidBody() : secretKeyInvalidBody());
/** A refused value in the simulator's own words (request bodies, the control API). */
export const invalidParam = (name: string, longMessage: string): SimulatorError =>
  new SimulatorError(422, { errors: [{ code: 'form_param_value_invalid', message: 'is invalid', long_message: longMessage, meta: { param_name: name } }] });
/** A query parameter value BAPI does not allow, in the catalogue's words. */
export const paramValueInvalid = (name: string, value: string): SimulatorError => new SimulatorError(422, paramValueInvalidBody(name, value));
export const invalidParamType = (name: string, type: string): SimulatorError => new SimulatorError(422, paramTypeInvalidBody(name, type));
export const duplicateParam = (name: string): SimulatorError => new SimulatorError(422, paramDuplicateBody(name));

export function badRequest(code: string, message: string, longMessage: string): SimulatorError {
  return new SimulatorError(400, { errors: [{ code, message, long_message: longMessage }] });
}

export function tooManyRequests(): ClerkErrorJSON {
  return {
    errors: [{ code: 'too_many_requests', message: 'Too many requests', long_message: 'Too many requests, please try again later.' }],
  };
}

const SERVER_ERRORS: Record<number, ClerkErrorJSON['errors'][number]> = {
  500: { code: 'internal_clerk_error', message: 'Oops, an unexpected error occurred', long_message: 'There was an internal error on our servers. We\'ve been notified and are working on fixing it.' },
  502: { code: 'bad_gateway', message: 'Bad gateway', long_message: 'The server received an invalid response from an upstream server.' },
  503: { code: 'service_unavailable', message: 'Service unavailable', long_message: 'The service is temporarily unavailable, please try again later.' },
};

export function serverErrorBody(status: number): ClerkErrorJSON {
  return { errors: [SERVER_ERRORS[status] ?? SERVER_ERRORS[500]!] };
}
