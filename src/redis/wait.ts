import { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';

/** Start-up gave up on Redis; the message is one line naming the server (without its password) and what to do. */
export class RedisUnreachableError extends Error {
  override name = 'RedisUnreachableError';
}

/** The URL with any password replaced, fit for a log line or an error message. */
export function redactRedisUrl(url: string): string {
  return url.replace(/^(rediss?:\/\/)([^:@/]*):[^@/]*@/i, '$1$2:[redacted]@');
}

// Credentials or a wrong server do not get better by waiting.
const HOPELESS = /NOAUTH|WRONGPASS|invalid password|invalid username|ERR AUTH|WRONGTYPE|ENOTFOUND/i;

/**
 * Resolves once Redis at `url` answers PING. Retries quietly (one log line, when the first
 * try fails) until `timeoutMs`, then throws one line saying what to do; wrong credentials
 * or an unknown host throw at once. `signal` ends the wait early (shutdown during start-up).
 */
export async function waitForRedis(url: string, { timeoutMs, signal, log }: { timeoutMs: number; signal?: AbortSignal; log?: Logger }): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (let attempt = 0; ; attempt++) {
    signal?.throwIfAborted();
    const r = new Redis(url, {
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      connectTimeout: Math.max(100, Math.min(2000, deadline - Date.now())),
    });
    // The socket's own error (ECONNREFUSED, ENOTFOUND) says more than connect()'s rejection.
    let socketError: string | undefined;
    r.on('error', (err: Error) => (socketError ??= err.message));
    try {
      await r.connect();
      if ((await r.ping()) === 'PONG') return;
      lastError = 'unexpected PING answer';
    } catch (err) {
      lastError = socketError ?? (err as Error).message;
    } finally {
      r.disconnect();
    }
    const where = redactRedisUrl(url);
    if (HOPELESS.test(lastError)) throw new RedisUnreachableError(`Redis at ${where} refused us (${lastError}): fix REDIS_URL`);
    if (Date.now() + 250 >= deadline) {
      throw new RedisUnreachableError(`cannot reach Redis at ${where} within ${timeoutMs} ms (${lastError}): start Redis, fix REDIS_URL, or raise REDIS_CONNECT_TIMEOUT_MS`);
    }
    if (attempt === 0) log?.warn({ redis: where, err: lastError, waitMs: timeoutMs }, 'Redis does not answer yet: waiting for it');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 250);
      signal?.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
  }
}
