import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, scrub } from '../src/logger.ts';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { log: createLogger({ level: 'debug', destination }), text: () => lines.join('') };
}

describe('logger', () => {
  it('masks secrets and e-mail addresses in messages, fields, nested objects and errors', () => {
    const { log, text } = capture();
    const secret = 'sk_live_Abc123XyZ';
    const whsec = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    log.info({ key: secret, nested: { deep: [{ email: 'ada@example.com' }] }, header: `Bearer ${'t'.repeat(30)}` }, `using ${whsec} for grace@example.org`);
    log.error({ err: new Error(`failed for ada.lovelace+x@sub.example.co.uk with ${secret}`) }, 'boom');
    log.warn('%s and %s', 'x', 'ada@example.com');
    const out = text();
    for (const leak of [secret, whsec, 'ada@example.com', 'grace@example.org', 'ada.lovelace+x@sub.example.co.uk', 't'.repeat(30)]) {
      expect(out).not.toContain(leak);
    }
    expect(out).toContain('sk_live_[redacted]');
    expect(out).toContain('[email]');
    expect(out).toContain('boom');
  });

  it('leaves ordinary ids alone', () => {
    expect(scrub('orginv_2xQ7dM3bVvQpZr1s9kLw0aYt8Hc of org_2xQ6yN8cTtHh4Jk2mPq7rSd1Ef0')).toBe(
      'orginv_2xQ7dM3bVvQpZr1s9kLw0aYt8Hc of org_2xQ6yN8cTtHh4Jk2mPq7rSd1Ef0',
    );
  });
});
