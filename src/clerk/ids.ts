import { z } from 'zod';

/** The kinds of Clerk object whose ids the mirror reads, by their id prefix. */
export type ClerkIdPrefix = 'org' | 'orginv' | 'user';

/** Ids Clerk issues: a prefix, an underscore, then letters and digits. Anything else never reaches a path. */
export function clerkIdPattern(prefix: ClerkIdPrefix): RegExp {
  return new RegExp(`^${prefix}_[A-Za-z0-9]{1,64}$`);
}

export const ORGANIZATION_ID = clerkIdPattern('org');
export const INVITATION_ID = clerkIdPattern('orginv');

/** A zod string that is a Clerk id with that prefix. */
export const clerkIdSchema = (prefix: ClerkIdPrefix) => z.string().regex(clerkIdPattern(prefix), `expected a ${prefix}_… id`);
