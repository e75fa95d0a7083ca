/** A Clerk secret key's shape: `sk_live_` or `sk_test_`, then letters and digits. */
const SECRET_KEY_SOURCE = 'sk_(live|test)_[A-Za-z0-9]+';

/** A whole Clerk secret key (`sk_live_…` or `sk_test_…`). */
export const SECRET_KEY_PATTERN = new RegExp(`^${SECRET_KEY_SOURCE}$`);

const SECRET_KEY_IN_TEXT = new RegExp(`\\b${SECRET_KEY_SOURCE}`, 'g');

/**
 * Clerk's published BAPI budget for the instance a key belongs to: requests per 10 s, ten
 * times larger for production (`sk_live_`) than for development instances.
 */
export function clerkRequestsPerWindow(secretKey: string | undefined): number {
  return secretKey?.startsWith('sk_live_') ? 1000 : 100;
}

/** The window Clerk's BAPI budget is counted over. */
export const CLERK_RATE_WINDOW_MS = 10_000;

/** Masks anything shaped like a Clerk secret key in `text`, keeping whether it was live or test. */
export function redactSecretKeys(text: string): string {
  return text.replace(SECRET_KEY_IN_TEXT, 'sk_$1_[redacted]');
}
