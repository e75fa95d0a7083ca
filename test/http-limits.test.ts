import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, defaultMaxConnections, HTTP_LIMITS } from '../src/http/app.ts';
import { createLogger } from '../src/logger.ts';
import { reconcileOverdue, RECONCILE_OVERDUE_INTERVALS } from '../src/maintenance/jobs.ts';
import { MirrorReader } from '../src/mirror/reader.ts';
import { migrateMirror } from '../src/mirror/migrate.ts';
import { openMirrorDb, type MirrorConnection } from '../src/mirror/open.ts';
import { PipelineStats } from '../src/stats.ts';
import { tempDir } from './helpers/fixtures.ts';

const KEY = 'mirror-key-0123456789abcdefghij';
const tmp = tempDir();
let conn: MirrorConnection;
const apps: FastifyInstance[] = [];

beforeAll(() => {
  conn = openMirrorDb({ path: join(tmp.path, 'mirror.db') });
  migrateMirror(conn);
});
afterAll(async () => {
  for (const app of apps) await app.close();
  conn.sqlite.close();
  tmp.cleanup();
});

const LIMITS = { headersTimeoutMs: 400, requestTimeoutMs: 800, keepAliveTimeoutMs: 300, idleSocketTimeoutMs: 5000, checkIntervalMs: 50, maxConnections: 20 };

async function listening(fastPath: boolean): Promise<{ port: number; app: FastifyInstance }> {
  const app = await buildApp({ log: createLogger({ level: 'silent' }), stats: new PipelineStats(), readiness: {}, api: { reader: new MirrorReader(conn), keys: [KEY] }, fastPath, http: LIMITS });
  apps.push(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { port: (app.server.address() as { port: number }).port, app };
}

/** Opens a socket, runs `send` on it, resolves with ms from connect to close. */
function closedAfter(port: number, send: (s: Socket) => void): Promise<number> {
  return new Promise((resolve) => {
    const started = Date.now();
    const s = connect(port, '127.0.0.1', () => send(s));
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => resolve(Date.now() - started));
  });
}

describe.each([true, false])('HTTP server limits (fast path %s)', (fastPath) => {
  it('closes idle, slow-header, endless-body, short-body and idle keep-alive connections within their timeouts', async () => {
    const { port } = await listening(fastPath);
    const timers: NodeJS.Timeout[] = [];
    const drip = (s: Socket, text: string) => timers.push(setInterval(() => s.writable && s.write(text), 100));
    const [idle, slowHeaders, endless, short, keepAlive] = await Promise.all([
      closedAfter(port, () => {}),
      closedAfter(port, (s) => (s.write('GET /healthz HTTP/1.1\r\n'), drip(s, 'x-a: b\r\n'))),
      closedAfter(port, (s) => (s.write('POST /webhooks/clerk HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n'), drip(s, '1\r\n \r\n'))),
      closedAfter(port, (s) => s.write('POST /webhooks/clerk HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"a":')),
      closedAfter(port, (s) => s.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n')),
    ]);
    for (const t of timers) clearInterval(t);
    const slack = 600;
    expect(idle).toBeLessThan(LIMITS.headersTimeoutMs + LIMITS.checkIntervalMs + slack);
    expect(slowHeaders).toBeLessThan(LIMITS.headersTimeoutMs + LIMITS.checkIntervalMs + slack);
    expect(endless).toBeLessThan(LIMITS.requestTimeoutMs + LIMITS.checkIntervalMs + slack);
    expect(short).toBeLessThan(LIMITS.requestTimeoutMs + LIMITS.checkIntervalMs + slack);
    // node keeps an idle keep-alive socket up to 1 s past keepAliveTimeout (its keepAliveTimeoutBuffer).
    expect(keepAlive).toBeLessThan(LIMITS.keepAliveTimeoutMs + 1000 + slack);
  });

  it('caps open connections: one past the cap is closed at once', async () => {
    const { port, app } = await listening(fastPath);
    expect(app.server.maxConnections).toBe(LIMITS.maxConnections);
    const held: Socket[] = [];
    for (let i = 0; i < LIMITS.maxConnections; i++) {
      await new Promise<void>((resolve) => held.push(connect(port, '127.0.0.1', () => resolve()).on('error', () => {})));
    }
    await new Promise((r) => setTimeout(r, 50));
    const extra = await closedAfter(port, () => {});
    for (const s of held) s.destroy();
    expect(extra).toBeLessThan(200);
  });
});

describe('defaults', () => {
  it('timeouts fit a slow Svix delivery (15 s in all) and close what never finishes', () => {
    expect(HTTP_LIMITS.headersTimeoutMs).toBeLessThanOrEqual(HTTP_LIMITS.requestTimeoutMs);
    expect(HTTP_LIMITS.requestTimeoutMs).toBeGreaterThan(15_000);
    expect(HTTP_LIMITS.requestTimeoutMs).toBeLessThanOrEqual(60_000);
  });

  it('the connection cap leaves 256 descriptors of the open-file limit', () => {
    const limits = (soft: string) => `Limit                     Soft Limit           Hard Limit           Units\nMax open files            ${soft}                 524288               files\n`;
    expect(defaultMaxConnections(limits('1024'))).toBe(768);
    expect(defaultMaxConnections(limits('100'))).toBe(64);
    expect(defaultMaxConnections(limits('unlimited'))).toBe(0);
    expect(defaultMaxConnections('nothing')).toBe(0);
  });
});

describe('reconciliation overdue (readiness of the worker role)', () => {
  const hour = 3_600_000;
  const now = 100 * hour;
  const limit = RECONCILE_OVERDUE_INTERVALS * hour;
  it('passes before the state is filled, and while filled recently', () => {
    expect(reconcileOverdue({ intervalMs: hour, filledAt: undefined, lastAt: undefined, now })).toBe(true);
    expect(reconcileOverdue({ intervalMs: hour, filledAt: now - limit + 1000, lastAt: undefined, now })).toBe(true);
  });
  it('passes with a recent reconciliation', () => {
    expect(reconcileOverdue({ intervalMs: hour, filledAt: now - 50 * hour, lastAt: now - limit + 1000, now })).toBe(true);
  });
  it('fails past 3 intervals without one, naming the rule', () => {
    expect(reconcileOverdue({ intervalMs: hour, filledAt: now - 50 * hour, lastAt: now - limit - 1000, now })).toMatch(/reconciliation overdue: the last successful reconciliation was 180 min ago, more than 3 × RECONCILE_INTERVAL_MS \(180 min\)/);
    expect(reconcileOverdue({ intervalMs: hour, filledAt: now - 50 * hour, lastAt: undefined, now })).toMatch(/no reconciliation has succeeded/);
  });
  it('passes when automatic maintenance is off', () => {
    expect(reconcileOverdue({ intervalMs: 0, filledAt: 0, lastAt: undefined, now })).toBe(true);
  });
});
