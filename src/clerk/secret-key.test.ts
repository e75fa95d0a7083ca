import { describe, expect, it } from 'vitest';
import { clerkRequestsPerWindow, redactSecretKeys, SECRET_KEY_PATTERN } from './secret-key.ts';

describe('Clerk secret keys', () => {
  it('are sk_live_ or sk_test_ and letters or digits', () => {
    for (const good of ['sk_live_Abc123', 'sk_test_0']) expect(SECRET_KEY_PATTERN.test(good), good).toBe(true);
    for (const bad of ['sk_live_', 'pk_test_abc', 'sk_prod_abc', 'sk_test_a-b', 'sk_test_abc\n', ' sk_test_abc']) {
      expect(SECRET_KEY_PATTERN.test(bad), bad).toBe(false);
    }
  });

  it("carry Clerk's budget: 1000 requests per window for production, 100 otherwise", () => {
    expect(clerkRequestsPerWindow('sk_live_abc')).toBe(1000);
    expect(clerkRequestsPerWindow('sk_test_abc')).toBe(100);
    expect(clerkRequestsPerWindow(undefined)).toBe(100);
  });

  it('are masked wherever they appear in text, keeping live or test', () => {
    expect(redactSecretKeys('key sk_live_Abc123XyZ, then "sk_test_9z"')).toBe('key sk_live_[redacted], then "sk_test_[redacted]"');
    expect(redactSecretKeys('ask_live_abc is not one')).toBe('ask_live_abc is not one');
    // Called twice on one string: the pattern keeps no state between calls.
    expect(redactSecretKeys('sk_test_a')).toBe('sk_test_[redacted]');
    expect(redactSecretKeys('sk_test_a')).toBe('sk_test_[redacted]');
  });
});
