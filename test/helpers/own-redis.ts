import { spawn, type ChildProcess } from 'node:child_process';
import { withOneShotRedis } from '../../src/redis/connection.ts';
import { freePort, redisServerArgs } from '../../src/redis/managed.ts';
import { waitUntil } from './fixtures.ts';

const servers = new Set<ChildProcess>();

/** SIGKILLs every server started here that still runs (call from afterAll). */
export function killOwnRedises(): void {
  for (const s of servers) s.kill('SIGKILL');
}

/** Whether a Redis answers PING at `url` (without retrying). */
export async function redisAnswers(url: string): Promise<boolean> {
  return withOneShotRedis(url, async (r) => (await r.ping()) === 'PONG').catch(() => false);
}

/** A redis-server of the test's own (no AOF), to kill under a running service. */
export async function ownRedis(dir: string, extraArgs: string[] = []): Promise<{ url: string; server: ChildProcess }> {
  const port = await freePort();
  const server = spawn('redis-server', [...redisServerArgs({ port, dir, appendfsync: false }), ...extraArgs], { stdio: 'ignore' });
  servers.add(server);
  server.once('exit', () => servers.delete(server));
  const url = `redis://127.0.0.1:${port}`;
  await waitUntil(() => redisAnswers(url), 'the test redis-server');
  return { url, server };
}
