import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, formatPretty, resolveLogFormat, scrub } from '../src/logger.ts';

function capture(format: 'json' | 'pretty' = 'json', color = false) {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { log: createLogger({ level: 'trace', destination, format, color }), text: () => lines.join(''), lines };
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

  it('masks the password of a URL, and keeps the rest of it', () => {
    expect(scrub('cannot reach redis://:hunter2@10.0.0.5:6379/0 or rediss://app:s3cr%40t@redis.internal:6380')).toBe(
      'cannot reach redis://:[redacted]@10.0.0.5:6379/0 or rediss://app:[redacted]@redis.internal:6380',
    );
    expect(scrub('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
  });

  it('leaves ordinary ids alone', () => {
    expect(scrub('orginv_2xQ7dM3bVvQpZr1s9kLw0aYt8Hc of org_2xQ6yN8cTtHh4Jk2mPq7rSd1Ef0')).toBe(
      'orginv_2xQ7dM3bVvQpZr1s9kLw0aYt8Hc of org_2xQ6yN8cTtHh4Jk2mPq7rSd1Ef0',
    );
  });
});

describe('the pretty format', () => {
  const TIME = /^\d\d:\d\d:\d\d /;

  it('writes HH:MM:SS LEVEL msg key=value, one line per call, for every level', () => {
    const { log, lines } = capture('pretty');
    log.trace('t');
    log.debug('d');
    log.info({ done: 3, total: 40, unit: 'invitations' }, 'progress');
    log.warn({ waitMs: 3000, what: 'list instance invitations', ok: true, gone: null }, 'BAPI answered 429');
    log.error({ err: new Error('boom') }, 'failed');
    log.fatal({ nested: { a: [1, 2] } }, 'dead');
    expect(lines.map((l) => l.replace(TIME, ''))).toEqual([
      'TRACE t\n',
      'DEBUG d\n',
      'INFO  progress done=3 total=40 unit=invitations\n',
      'WARN  BAPI answered 429 waitMs=3000 what="list instance invitations" ok=true gone=null\n',
      'ERROR failed err="boom"\n',
      'FATAL dead nested={"a":[1,2]}\n',
    ]);
    for (const l of lines) expect(l).toMatch(TIME);
    // The time is the line's own, in local time.
    const t = new Date(2024, 0, 2, 3, 4, 5).getTime();
    expect(formatPretty(JSON.stringify({ level: 30, time: t, pid: 1, hostname: 'h', name: 'n', msg: 'm' }))).toBe('03:04:05 INFO  m\n');
  });

  it('masks secrets and e-mail addresses as the JSON format does, child bindings included', () => {
    const { log, text } = capture('pretty');
    const secret = 'sk_live_Abc123XyZ';
    const whsec = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    log.info({ key: secret, nested: { deep: [{ email: 'ada@example.com' }] }, header: `Bearer ${'t'.repeat(30)}` }, `using ${whsec} for grace@example.org`);
    log.error({ err: new Error(`failed for ada.lovelace+x@sub.example.co.uk with ${secret}`) }, 'boom');
    log.warn('%s and %s', 'x', 'ada@example.com');
    // Pino does not pass a child's bindings through the formatters: the pretty line is scrubbed whole.
    log.child({ user: 'linus@example.net' }).warn('child');
    const out = text();
    for (const leak of [secret, whsec, 'ada@example.com', 'grace@example.org', 'ada.lovelace+x@sub.example.co.uk', 'linus@example.net', 't'.repeat(30)]) {
      expect(out).not.toContain(leak);
    }
    expect(out).toContain('key=sk_live_[redacted]');
    expect(out).toContain('using whsec_[redacted] for [email]');
    expect(out).toContain('err="failed for [email] with sk_live_[redacted]"');
    expect(out).toContain('user=[email]');
    // A line that is not JSON (nothing pino writes) is still scrubbed.
    expect(formatPretty('not json for ada@example.com')).toBe('not json for [email]\n');
  });

  it('colours the level only when asked', () => {
    const plain = capture('pretty');
    plain.log.warn('w');
    expect(plain.text()).not.toContain('\x1b[');
    const coloured = capture('pretty', true);
    coloured.log.warn('w');
    coloured.log.error('e');
    expect(coloured.lines[0]!.slice(9)).toBe('\x1b[33mWARN \x1b[0m w\n');
    expect(coloured.lines[1]).toContain('\x1b[31mERROR\x1b[0m');
  });

  it('json stays the default, and auto is pretty only on a terminal', () => {
    const { log, text } = capture();
    log.info({ a: 1 }, 'm');
    expect(JSON.parse(text())).toMatchObject({ level: 30, a: 1, msg: 'm' });
    expect(resolveLogFormat('auto', { isTTY: true })).toBe('pretty');
    expect(resolveLogFormat('auto', { isTTY: false })).toBe('json');
    expect(resolveLogFormat('auto', {})).toBe('json');
    expect(resolveLogFormat('json', { isTTY: true })).toBe('json');
    expect(resolveLogFormat('pretty', {})).toBe('pretty');
    const lines: string[] = [];
    const tty = Object.assign(new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }), { isTTY: true });
    createLogger({ destination: tty, format: 'auto' }).info('on a terminal');
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d INFO {2}on a terminal\n$/);
  });
});
