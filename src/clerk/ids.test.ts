import { describe, expect, it } from 'vitest';
import { clerkIdPattern, clerkIdSchema, INVITATION_ID, ORGANIZATION_ID } from './ids.ts';

describe('Clerk ids', () => {
  it('are a prefix, an underscore and 1 to 64 letters or digits', () => {
    expect(ORGANIZATION_ID.test('org_2xQ6yN8cTtHh4Jk2mPq7rSd1Ef0')).toBe(true);
    expect(INVITATION_ID.test('orginv_2xQ7dM3bVvQpZr1s9kLw0aYt8Hc')).toBe(true);
    expect(clerkIdPattern('user').test(`user_${'a'.repeat(64)}`)).toBe(true);
    for (const bad of ['org_', `org_${'a'.repeat(65)}`, 'org_a-b', 'org_a/../b', 'org_a\n', ' org_a', 'orginv_abc', 'ORG_abc']) {
      expect(ORGANIZATION_ID.test(bad), bad).toBe(false);
    }
    expect(INVITATION_ID.test('org_abc')).toBe(false);
  });

  it('as a zod schema, name the prefix they expected', () => {
    expect(clerkIdSchema('orginv').parse('orginv_abc')).toBe('orginv_abc');
    const r = clerkIdSchema('orginv').safeParse('org_abc');
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toBe('expected a orginv_… id');
  });
});
