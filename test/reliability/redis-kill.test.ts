// Scenario: Redis (AOF on, appendfsync always) is killed with SIGKILL during a load and
// started again on the same port and directory. The service process is never restarted.
// Every event is a new invitation, so each acknowledged webhook maps to exactly one row.
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { ackedNotInMirror, busyJobs, duplicateAcks, duplicateRows, recordResult, runLoad, scale, scanLogs, scenario, waitConverged } from './helpers/scenario.ts';

const scene = scenario('redis-kill');

const EVENTS = scale(800, 4000);
const RATE = scale(200, 300);
const DOWN_MS = scale(2500, 8000);

it(`Redis SIGKILLed for ${DOWN_MS} ms during ${EVENTS} events: every 2xx is in the mirror, refusals were 503 and retried, no restart`, { timeout: scale(120_000, 400_000) }, async () => {
  const { creds, dbPath } = scene;
  const redis = await scene.startRedis();
  // Svix's schedule times 0.001: retries after 5 ms, 300 ms, 1.8 s, 7.2 s, 18 s, 36 s, 36 s.
  const sim = await scene.startSim({ faults: { latencyMs: { min: 5, max: 30 } }, delivery: { retryScale: 0.001 } });
  const service = await scene.spawn({ LOG_LEVEL: 'debug', BAPI_RATE_LIMIT: '100000', BAPI_TIMEOUT_MS: '5000' });
  const servicePid = service.pid();
  const { q, rec } = scene.watch(service);

  let downFrom = 0;
  let upFrom = 0;
  let restarted: Promise<void> | undefined;
  const load = await runLoad(sim, {
    events: EVENTS,
    ratePerSec: RATE,
    transitionShare: 0,
    onTick: async (done) => {
      if (downFrom || done < EVENTS * 0.3) return;
      await redis!.kill('SIGKILL');
      downFrom = Date.now();
      restarted = sleep(DOWN_MS).then(async () => {
        const restartBegan = Date.now();
        await redis!.start();
        upFrom = restartBegan;
      });
    },
  });
  const loadEndedAt = Date.now();
  await restarted;
  const upAt = Date.now();
  const result = await waitConverged({ sim, queue: q.queue, dbPath, ids: load.touched, timeoutMs: scale(100_000, 300_000) });

  // Attempts wholly inside the outage (sent after the kill, answered before the restart began).
  const duringOutage = rec.attempts.filter((a) => a.startedAt > downFrom && a.endedAt < upFrom);
  const outageStatuses: Record<string, number> = {};
  for (const a of duringOutage) outageStatuses[String(a.status)] = (outageStatuses[String(a.status)] ?? 0) + 1;
  const refusedIds = new Set(rec.attempts.filter((a) => a.status === 503).map((a) => a.svixId));
  const acked = rec.acknowledged();
  const refusedThenAcked = [...refusedIds].filter((id) => acked.has(id)).length;

  // Every acknowledged event's invitation is in the mirror at (at least) the event's version.
  const notInMirror = ackedNotInMirror(acked.values(), dbPath);

  const failed = await q.queue.getFailed();
  const delivery = sim.delivery.stats();
  const logs = scanLogs(service.output(), creds);
  const figures = {
    eventsSent: load.events,
    invitations: load.touched.size,
    redisDownMs: upAt - downFrom,
    killedAfterEvents: Math.ceil(EVENTS * 0.3),
    webhookAttempts: rec.attempts.length,
    webhookAnswers: rec.byStatus(),
    answersWhileRedisDown: outageStatuses,
    refused503: refusedIds.size,
    refusedThenAcknowledged: refusedThenAcked,
    acknowledged: acked.size,
    ackedNotInMirror: notInMirror.length,
    inMirror: result.comparison.equal,
    lost: result.comparison.missing.length + result.comparison.different.length,
    duplicateDeliveries: duplicateAcks(rec),
    duplicateRows: duplicateRows(dbPath),
    failedJobs: failed.length,
    deliveryExhausted: delivery.exhausted,
    servicePidUnchanged: service.pid() === servicePid && service.alive(),
    convergeMsAfterLoad: upAt - loadEndedAt + result.ms,
    convergeMsAfterRedisBack: result.ms,
    logSecretHits: logs.secrets,
    logEmails: logs.emails,
  };
  recordResult('redis-kill', figures);

  expect(service.alive()).toBe(true);
  expect(service.pid()).toBe(servicePid);
  expect(duringOutage.length).toBeGreaterThan(0);
  expect(outageStatuses).toEqual({ 503: duringOutage.length });
  expect(refusedIds.size).toBeGreaterThan(0);
  expect(refusedThenAcked).toBe(refusedIds.size);
  expect(notInMirror.map((a) => a.invitationId)).toEqual([]);
  expect(acked.size).toBe(load.events);
  expect(result.comparison.missing).toEqual([]);
  expect(result.comparison.different).toEqual([]);
  expect(delivery.exhausted).toBe(0);
  expect(failed.map((j) => j.failedReason)).toEqual([]);
  expect(await busyJobs(q.queue)).toBe(0);
  expect(logs.secrets).toEqual([]);
  expect(logs.emails).toEqual([]);
});
