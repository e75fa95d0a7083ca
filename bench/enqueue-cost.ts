// Not a benchmark: Node and Redis CPU per SyncQueue.enqueue against a private redis-server, with the
// enqueue connection's writes coalesced per turn (as the receiver does), without, and for an
// event without a version (no announced-version command, only the job), 50 at a time,
// alternating. `tsx bench/enqueue-cost.ts`.
import { cpuUsage } from 'node:process';
import { SyncQueue } from '../src/queue/sync-queue.ts';
import { mirrorKeys } from '../src/state/keys.ts';
import { connectRedis } from '../src/redis/connection.ts';
import { procCpuUs, startRedis, withResources } from './harness.ts';

const N = 20_000;
const AT_ONCE = 50;

await withResources('enqueue-cost', async (dir, defer) => {
  const redis = await startRedis(dir);
  defer(() => redis.stop());
  const connection = connectRedis(redis.url, { failFast: true });
  defer(() => void connection.quit().catch(() => connection.disconnect()));
  await new Promise((ready) => connection.once('ready', ready));
  const coalesced = new SyncQueue({ connection, keys: mirrorKeys() });
  defer(() => coalesced.close());
  const plain = new SyncQueue({ connection, keys: mirrorKeys(), coalesceWrites: false });
  defer(() => plain.close());
  for (const round of [1, 2, 3]) {
    const variants = [
      ['coalesced', coalesced, true],
      ['one write each', plain, true],
      // No event version: the announced-version command is not sent, only the job.
      ['job only', coalesced, false],
    ] as const;
    for (const [name, queue, announce] of variants) {
      const c0 = cpuUsage();
      const r0 = procCpuUs(redis.pid);
      for (let i = 0; i < N; i += AT_ONCE) {
        await Promise.all(
          Array.from({ length: AT_ONCE }, (_, k) => {
            const n = `${round}${name.length}${String(i + k).padStart(20, '0')}`;
            return queue.enqueue({ organizationId: 'org_2bench', invitationId: `orginv_2${n}`, eventUpdatedAt: announce ? i + k : undefined, receivedAt: Date.now(), reason: 'organizationInvitation.created' });
          }),
        );
      }
      const c = cpuUsage(c0);
      const redisUs = (procCpuUs(redis.pid) - r0) / N;
      console.log(`round ${round} ${name.padEnd(15)} ${((c.user + c.system) / N).toFixed(1)} µs Node CPU, ${redisUs.toFixed(1)} µs Redis CPU per enqueue`);
    }
  }
});
