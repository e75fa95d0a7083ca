import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';

const valid = {
  CLERK_SECRET_KEY: 'sk_test_abcdef0123456789',
  CLERK_WEBHOOK_SIGNING_SECRET: `whsec_${Buffer.alloc(24, 7).toString('base64')}`,
};

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig({});
    expect(c.clerk.apiUrl).toBe('https://api.clerk.com');
    expect(c.mirrorDbPath).toBe('./data/mirror.db');
    expect(c.http).toEqual({ port: 8080, host: '127.0.0.1' });
    expect(c.logLevel).toBe('info');
    expect(c.redisUrl).toBeUndefined();
    expect(c.clerk.rateLimit).toEqual({ max: 30, windowMs: 10_000 });
    expect(c.shutdownTimeoutMs).toBe(15_000);
    expect(c.redisConnectTimeoutMs).toBe(15_000);
    expect(c.logFormat).toBe('auto');
    expect(c.adminKey).toBeUndefined();
  });

  it('reads every variable and freezes the result', () => {
    const c = loadConfig({
      ...valid,
      CLERK_SECRET_KEY: 'sk_live_xyz123',
      CLERK_API_URL: 'http://127.0.0.1:9999/',
      REDIS_URL: 'redis://localhost:6380/2',
      MIRROR_DB_PATH: '/var/lib/mirror/m.db',
      PORT: '9000',
      HOST: '0.0.0.0',
      MIRROR_API_KEY: 'k'.repeat(32),
      LOG_LEVEL: 'debug',
    });
    expect(c.clerk.apiUrl).toBe('http://127.0.0.1:9999');
    expect(c.clerk.rateLimit.max).toBe(300);
    expect(c.http).toEqual({ port: 9000, host: '0.0.0.0' });
    expect(c.redisUrl).toBe('redis://localhost:6380/2');
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.clerk)).toBe(true);
    expect(() => {
      (c.http as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  it('treats empty strings as unset', () => {
    expect(loadConfig({ PORT: '', REDIS_URL: '' }).http.port).toBe(8080);
  });

  it.each([
    ['CLERK_SECRET_KEY', 'pk_test_abc', /sk_live_ or sk_test_/],
    ['CLERK_SECRET_KEY', 'false', /sk_live_ or sk_test_/],
    ['CLERK_WEBHOOK_SIGNING_SECRET', 'secret', /whsec_<base64>/],
    ['CLERK_WEBHOOK_SIGNING_SECRET', 'whsec_!!!', /whsec_<base64>/],
    ['CLERK_WEBHOOK_SIGNING_SECRET', 'whsec_YWI=', /at least 16 bytes/],
    ['CLERK_API_URL', 'api.clerk.com', /http\(s\) URL/],
    ['REDIS_URL', 'http://localhost', /redis:\/\//],
    ['PORT', 'eighty', /TCP port/],
    ['PORT', '70000', /TCP port/],
    ['MIRROR_API_KEY', 'short', /24 characters/],
    ['LOG_LEVEL', 'loud', /one of fatal, error/],
    ['RECONCILE_INTERVAL_MS', '1', /at least 60000, or 0/],
    ['RECONCILE_INTERVAL_MS', '59999', /at least 60000, or 0/],
    ['BAPI_RATE_WINDOW_MS', '10', /at least 1000/],
    ['BAPI_TIMEOUT_MS', '1', /at least 100/],
    ['RECONCILE_MAX_AGE_MS', '1000', /at least 60000/],
    ['REPLICA_MAX_LAG_MS', '5', /at least 1000/],
    ['SHUTDOWN_TIMEOUT_MS', '10', /at least 1000/],
    ['REDIS_CONNECT_TIMEOUT_MS', '0', /at least 100/],
    ['MIRROR_ADMIN_KEY', 'admin', /24 characters/],
    ['LOG_FORMAT', 'xml', /one of auto, json, pretty/],
  ])('rejects %s=%s with one line naming it', (name, value, expected) => {
    const err = errorOf(() => loadConfig({ ...valid, [name]: value }));
    expect(err.variable).toBe(name);
    expect(err.message.startsWith(`${name}: `)).toBe(true);
    expect(err.message).toMatch(expected);
    expect(err.message).not.toContain('\n');
  });

  it('reads LOG_LEVEL in any case, and takes 0 or a minute or more for RECONCILE_INTERVAL_MS', () => {
    expect(loadConfig({ ...valid, LOG_LEVEL: 'INFO' }).logLevel).toBe('info');
    expect(loadConfig({ ...valid, LOG_LEVEL: 'Debug' }).logLevel).toBe('debug');
    expect(loadConfig({ ...valid, LOG_FORMAT: 'JSON' }).logFormat).toBe('json');
    expect(loadConfig({ ...valid, RECONCILE_INTERVAL_MS: '0' }).reconcile.intervalMs).toBe(0);
    expect(loadConfig({ ...valid, RECONCILE_INTERVAL_MS: '60000' }).reconcile.intervalMs).toBe(60_000);
  });

  it('names every bad or missing variable in one line', () => {
    const err = errorOf(() => loadConfig({ PORT: 'eighty', LOG_LEVEL: 'loud' }, { require: ['CLERK_SECRET_KEY', 'CLERK_WEBHOOK_SIGNING_SECRET'] }));
    expect(err.variable).toBe('PORT');
    expect([err.variable, ...err.others.map((o) => o.variable)].sort()).toEqual(['CLERK_SECRET_KEY', 'CLERK_WEBHOOK_SIGNING_SECRET', 'LOG_LEVEL', 'PORT']);
    expect(err.message).not.toContain('\n');
    for (const name of ['PORT: expected', 'LOG_LEVEL: expected one of', 'CLERK_SECRET_KEY: is required', 'CLERK_WEBHOOK_SIGNING_SECRET: is required']) expect(err.message).toContain(name);
  });

  it('names a required variable that is missing', () => {
    const err = errorOf(() => loadConfig({}, { require: ['CLERK_WEBHOOK_SIGNING_SECRET'] }));
    expect(err.message).toMatch(/^CLERK_WEBHOOK_SIGNING_SECRET: is required/);
  });

  it('never echoes a secret value back in the error', () => {
    const err = errorOf(() => loadConfig({ CLERK_SECRET_KEY: 'sk_test_has-a-dash-so-invalid' }));
    expect(err.message).not.toContain('has-a-dash');
  });
});
