// Scenario: the disk under Redis fills up during a load, then Redis is SIGKILLed, the disk
// freed and Redis started again on its AOF. The worker runs as a process of its own, started
// only after that, so every acknowledged job must come back from the AOF. Redis runs with the fsync policy of the managed
// redis-server (MANAGED_APPENDFSYNC): a 2xx promises the job is on disk, so no acknowledged
// event may be missing afterwards. (With `everysec` an acknowledged job can sit in memory
// when the AOF write fails, and the crash loses it.) Needs root for a small tmpfs.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { MANAGED_APPENDFSYNC } from '../../src/redis/managed.ts';
import { ackedNotInMirror, recordResult, runLoad, scale, scanLogs, scenario, waitConverged } from './helpers/scenario.ts';

let mounted = false;
const scene = scenario('redis-disk', { beforeCleanup: () => mounted && execFileSync('umount', ['-l', redisDir]) });
const { tmp, redisDir } = scene;

const EVENTS = scale(600, 3000);
const RATE = scale(150, 300);

/** Writes until the file system says ENOSPC; returns the filler's path. */
function fillDisk(dir: string): string {
  const filler = join(dir, 'filler');
  const chunk = Buffer.alloc(4096, 1);
  let size = 0;
  try {
    for (;;) {
      writeFileSync(filler, chunk, { flag: 'a' });
      size += chunk.length;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
  expect(size).toBeGreaterThan(0);
  return filler;
}

it(`disk full under Redis during ${EVENTS} events, then a Redis crash: every 2xx is in the mirror`, { timeout: scale(150_000, 400_000) }, async () => {
  mkdirSync(redisDir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${scale(16, 48)}m`, 'tmpfs', redisDir]);
  mounted = true;
  const { creds, dbPath } = scene;
  const redis = await scene.startRedis({ fsync: MANAGED_APPENDFSYNC });
  const sim = await scene.startSim({ faults: { latencyMs: { min: 5, max: 30 } }, delivery: { retryScale: 0.001 } });
  const env = { LOG_LEVEL: 'info', BAPI_RATE_LIMIT: '100000', BAPI_TIMEOUT_MS: '5000' };
  const service = await scene.spawn(env, { roles: ['receiver', 'replica'] });
  const { q, rec } = scene.watch(service);

  let fullAt = 0;
  let crashed: Promise<void> | undefined;
  const load = await runLoad(sim, {
    events: EVENTS,
    ratePerSec: RATE,
    transitionShare: 0,
    onTick: (done) => {
      if (fullAt || done < EVENTS * 0.3) return;
      const filler = fillDisk(redisDir);
      fullAt = Date.now();
      // Webhooks keep coming against a full disk for a while, then Redis dies hard; the disk
      // is freed and Redis restarts on what its AOF holds.
      crashed = sleep(1500).then(async () => {
        await redis!.kill('SIGKILL');
        rmSync(filler);
        await redis!.start();
      });
    },
  });
  await crashed;
  await scene.spawn({ ...env, MIRROR_DB_PATH: join(tmp.path, 'worker-unused.db') }, { roles: ['worker'] });
  const result = await waitConverged({ sim, queue: q.queue, dbPath, ids: load.touched, timeoutMs: scale(100_000, 300_000) });

  const acked = rec.acknowledged();
  const notInMirror = ackedNotInMirror(acked.values(), dbPath);
  const logs = scanLogs(service.output(), creds);
  const figures = {
    appendfsync: MANAGED_APPENDFSYNC,
    eventsSent: load.events,
    webhookAnswers: rec.byStatus(),
    acknowledged: acked.size,
    ackedNotInMirror: notInMirror.length,
    inMirror: result.comparison.equal,
    lost: result.comparison.missing.length + result.comparison.different.length,
    convergeMs: result.ms,
    serviceAlive: service.alive(),
    logSecretHits: logs.secrets,
    logEmails: logs.emails,
  };
  recordResult('redis-disk', figures);

  expect(fullAt).toBeGreaterThan(0);
  expect(notInMirror.map((a) => a.invitationId)).toEqual([]);
  // The refusals while the disk was full were retried by Svix and acknowledged later.
  expect(acked.size).toBe(load.events);
  expect(result.comparison.missing).toEqual([]);
  expect(result.comparison.different).toEqual([]);
  expect(service.alive()).toBe(true);
  expect(logs.secrets).toEqual([]);
  expect(logs.emails).toEqual([]);
});
