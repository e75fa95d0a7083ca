// Scenario: the worker process is killed with SIGKILL in the middle of a load and started
// again. Receiver, worker and replica run as separate processes (`start --role`), so the
// receiver keeps acknowledging webhooks while no worker runs. The jobs the dead worker held stay "active"
// with an expiring lock; BullMQ's stall check hands them to the new worker.
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { busyJobs, duplicateAcks, duplicateRows, recordResult, runLoad, scale, scanLogs, scenario, waitConverged } from './helpers/scenario.ts';

const scene = scenario('worker-kill');

const EVENTS = scale(1000, 4000);
const RATE = scale(250, 300);

it(`SIGKILL of the worker during ${EVENTS} events: the restarted worker recovers the stalled jobs and the mirror converges`, { timeout: scale(150_000, 400_000) }, async () => {
  const { creds, dbPath } = scene;
  await scene.startRedis();
  // Latency keeps the worker's 8 slots busy, so the kill always catches jobs mid-fetch.
  const sim = await scene.startSim({ faults: { latencyMs: { min: 20, max: 80 } } });
  const env = { LOG_LEVEL: 'debug', BAPI_RATE_LIMIT: '100000', BAPI_TIMEOUT_MS: '5000' };
  const [receiver, worker, replica] = await Promise.all([
    scene.spawn(env, { roles: ['receiver'] }),
    scene.spawn(env, { roles: ['worker'] }),
    scene.spawn(env, { roles: ['replica'] }),
  ]);
  const firstWorkerPid = worker.pid();
  const { q, rec } = scene.watch(receiver);

  let killedAt = 0;
  let stalled: string[] = [];
  let restarted: Promise<void> | undefined;
  const load = await runLoad(sim, {
    events: EVENTS,
    ratePerSec: RATE,
    onTick: async (done) => {
      if (killedAt || done < EVENTS * 0.4) return;
      await worker!.kill('SIGKILL');
      killedAt = Date.now();
      // Nothing can complete these any more: they are the jobs the dead worker held.
      stalled = (await q!.queue.getActive()).map((j) => j.id!);
      restarted = sleep(1000).then(() => worker!.start());
    },
  });
  const loadEndedAt = Date.now();
  await restarted;
  const restartedAt = Date.now();
  const result = await waitConverged({ sim, queue: q.queue, dbPath, ids: load.touched, timeoutMs: scale(110_000, 300_000) });

  const failed = await q.queue.getFailed();
  const stalledStates = await Promise.all(stalled.map(async (id) => (await q!.queue.getJob(id))?.getState() ?? 'removed'));
  const delivery = sim.delivery.stats();
  const acked = rec.acknowledged();
  const logs = scanLogs(receiver.output() + worker.output() + replica.output(), creds);
  const figures = {
    eventsSent: load.events,
    invitations: load.touched.size,
    loadMs: load.ms,
    acknowledged: acked.size,
    webhookAnswers: rec.byStatus(),
    inMirror: result.comparison.equal,
    missing: result.comparison.missing.length,
    different: result.comparison.different.length,
    lost: result.comparison.missing.length + result.comparison.different.length,
    duplicateDeliveries: duplicateAcks(rec),
    duplicateRows: duplicateRows(dbPath),
    stalledJobsAtKill: stalled.length,
    stalledJobStatesAfter: stalledStates,
    failedJobs: failed.length,
    deliveryExhausted: delivery.exhausted,
    killedAfterEvents: Math.ceil(EVENTS * 0.4),
    convergeMsAfterLoad: restartedAt - loadEndedAt + result.ms,
    convergeMsAfterKill: restartedAt - killedAt + result.ms,
    bapiGets: sim.stats().byRoute['GET /v1/organizations/:organization_id/invitations/:invitation_id'] ?? 0,
    logBytes: logs.bytes,
    logSecretHits: logs.secrets,
    logEmails: logs.emails,
  };
  recordResult('worker-kill', figures);

  expect(worker.pid()).not.toBe(firstWorkerPid);
  expect(result.comparison.missing).toEqual([]);
  expect(result.comparison.different).toEqual([]);
  expect(result.converged).toBe(true);
  expect(delivery.exhausted).toBe(0);
  expect(acked.size).toBe(load.events);
  expect(stalled.length).toBeGreaterThan(0);
  expect(stalledStates.every((s) => s === 'completed')).toBe(true);
  expect(failed.map((j) => j.failedReason)).toEqual([]);
  expect(await busyJobs(q.queue)).toBe(0);
  expect(logs.secrets).toEqual([]);
  expect(logs.emails).toEqual([]);
});
