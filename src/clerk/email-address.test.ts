import { describe, expect, it } from 'vitest';
import { redactEmailAddresses } from './email-address.ts';

const r = (text: string) => redactEmailAddresses(text, '#');

describe('e-mail address redaction', () => {
  it('masks addresses with or without a top-level domain, wherever they sit', () => {
    expect(r('ada@example.com')).toBe('#');
    expect(r('failed for ada.lovelace+x@sub.example.co.uk with x')).toBe('failed for # with x');
    expect(r('{"email_address":"ada@example.com"}')).toBe('{"email_address":"#"}');
    expect(r('<ada@example.com>, (grace@localhost); [linus@x]')).toBe('<#>, (#); [#]');
    expect(r('José@exämple.com')).toBe('#');
    expect(r('a@b@c.com')).toBe('#');
    // A trailing full stop goes too: the address may end in one.
    expect(r('sent to ada@example.com.')).toBe('sent to #');
  });

  it("keeps a key=value line's key and a URL's scheme and host", () => {
    expect(r('user=linus@example.net')).toBe('user=#');
    expect(r('rediss://app:[redacted]@redis.internal:6380')).toBe('rediss://app:[redacted]@redis.internal:6380');
  });

  it('leaves text without an address alone', () => {
    expect(r('orginv_2xQ7dM3bVvQpZr1s9kLw0aYt8Hc of org_2xQ6yN8cTtHh4Jk2mPq7rSd1Ef0')).toBe('orginv_2xQ7dM3bVvQpZr1s9kLw0aYt8Hc of org_2xQ6yN8cTtHh4Jk2mPq7rSd1Ef0');
    expect(r('(@clerk/backend compatible)')).toBe('(@clerk/backend compatible)');
  });
});
