import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { freePort, redisServerArgs } from '../src/redis/managed.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

let redis: ChildProcess | undefined;
let dir: string | undefined;

/** One real redis-server for the whole run, unless TEST_REDIS_URL points at one (with `databases 32`). */
export async function setup(project: TestProject) {
  if (process.env.TEST_REDIS_URL) {
    project.provide('redisUrl', process.env.TEST_REDIS_URL);
    return;
  }
  const port = await freePort();
  dir = mkdtempSync(join(tmpdir(), 'cim-test-redis-'));
  // More databases than Redis' 16: test files that need a Redis database of their own each take one.
  redis = spawn('redis-server', [...redisServerArgs({ port, dir, appendfsync: false }), '--databases', '32'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not start within 10 s')), 10_000);
    redis!.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot start redis-server (${err.message}); install it with \`apt-get install -y redis-server\` or set TEST_REDIS_URL`));
    });
    redis!.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  project.provide('redisUrl', `redis://127.0.0.1:${port}`);
}

export async function teardown() {
  redis?.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
}
