import { randomBytes } from 'node:crypto';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * A Clerk-looking id: `prefix_` and 27 base62 characters. Clerk's ids are KSUIDs, whose
 * leading character is '2' for the current epoch range, so consumers that sniff ids (or
 * humans reading logs) see the same shape as production.
 */
export function newClerkId(prefix: string, random: () => number): string {
  let s = '2';
  for (let i = 1; i < 27; i++) s += BASE62[Math.floor(random() * 62)];
  return `${prefix}_${s}`;
}

/** A random base62 string from the OS RNG, for generated test credentials. */
export function randomBase62(length: number): string {
  const bytes = randomBytes(length);
  let s = '';
  for (const b of bytes) s += BASE62[b % 62];
  return s;
}
