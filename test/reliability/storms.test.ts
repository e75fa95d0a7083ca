// Scenario: webhook storms. (a) Every event is delivered three times (three endpoint URLs
// that all reach the receiver, same svix-id and body) and held back at random, so copies and
// events arrive shuffled. (b) 1,000 events for one invitation within one second, each a real
// change of its state. Either way the mirror must equal the truth and Clerk must be asked
// about each invitation at most twice.
import { expect, it } from 'vitest';
import { httpClient, svixHeaders } from './helpers/http.ts';
import { busyJobs, duplicateAcks, duplicateRows, recordResult, runLoad, scale, scanLogs, scenario, waitConverged } from './helpers/scenario.ts';

const scene = scenario('storms');
const { creds, dbPath } = scene;

const EVENTS = scale(400, 3000);
const HOT_EVENTS = 1000;

/** The scenario's processes, started by the first test (each test adds its own endpoints). */
async function setup() {
  if (!scene.services[0]) {
    // appendfsync everysec: this scenario is about coalescing; redis-kill and redis-disk are
    // the ones about durability.
    await scene.startRedis({ fsync: 'everysec' });
    await scene.startSim({ faults: { latencyMs: { min: 5, max: 30 } } });
    scene.watch(await scene.spawn({ LOG_LEVEL: 'debug', BAPI_RATE_LIMIT: '100000' }), { endpoint: false });
  }
  return { sim: scene.sim!, service: scene.services[0]!, q: scene.q!, rec: scene.rec! };
}

function callsPer(ids: Iterable<string>): { max: number; over2: string[]; total: number } {
  const calls = scene.sim!.stats().getInvitationCalls;
  let max = 0;
  let total = 0;
  const over2: string[] = [];
  for (const id of ids) {
    const n = calls[id] ?? 0;
    total += n;
    max = Math.max(max, n);
    if (n > 2) over2.push(`${id}:${n}`);
  }
  return { max, over2, total };
}

it(`every one of ${EVENTS} events delivered three times, shuffled: mirror equals truth, <= 2 BAPI calls per invitation`, { timeout: scale(90_000, 300_000) }, async () => {
  const { sim, service, q, rec } = await setup();
  const webhook = `${service!.url}/webhooks/clerk`;
  for (const url of [webhook, `${webhook}?copy=2`, `${webhook}?copy=3`]) sim!.delivery.addEndpoint(url);
  // Copies are held up to 1 s: longer than the 200 ms coalescing window plus a fetch, as Svix
  // retries and parallel deliveries are in production.
  sim!.delivery.setOptions({ reorderRate: 1, reorderWindowMs: 1000 });
  sim!.resetStats();
  const load = await runLoad(sim!, { events: EVENTS, ratePerSec: 200, transitionShare: 0.4 });
  const result = await waitConverged({ sim: sim!, queue: q!.queue, dbPath, ids: load.touched, timeoutMs: 60_000 });
  const calls = callsPer(load.touched);
  const delivery = sim!.delivery.stats();
  recordResult('storms-triple', {
    eventsSent: load.events,
    deliveries: delivery.sent,
    invitations: load.touched.size,
    acknowledged: rec!.acknowledged().size,
    acceptedAnswers: rec!.attempts.filter((a) => a.status === 200).length,
    duplicateDeliveries: duplicateAcks(rec!),
    inMirror: result.comparison.equal,
    lost: result.comparison.missing.length + result.comparison.different.length,
    duplicateRows: duplicateRows(dbPath),
    convergeMsAfterLoad: result.ms,
    bapiGets: calls.total,
    bapiGetsPerInvitation: +(calls.total / load.touched.size).toFixed(3),
    maxBapiGetsForOneInvitation: calls.max,
    invitationsOver2Gets: calls.over2.length,
    examplesOver2: calls.over2.slice(0, 5),
  });
  expect(delivery.sent).toBe(3 * load.events);
  expect(result.comparison.missing).toEqual([]);
  expect(result.comparison.different).toEqual([]);
  expect(calls.over2).toEqual([]);
  expect(await busyJobs(q!.queue)).toBe(0);
  sim!.delivery.removeEndpoint(`${webhook}?copy=2`);
  sim!.delivery.removeEndpoint(`${webhook}?copy=3`);
  sim!.delivery.setOptions({ reorderRate: 0 });
});

it(`${HOT_EVENTS} events for one invitation within a second: one state per event, mirror ends at the last, <= 2 BAPI calls`, { timeout: 60_000 }, async () => {
  const { sim, service, q } = await setup();
  const org = sim!.store.createOrganization({ name: 'Hot' });
  const inv = sim!.store.createInvitation(org.id, { emailAddress: 'hot.invitee@example.com' });
  // Every event names a newer state: a change Clerk sends no webhook for (metadata), then the
  // event carrying the new state, prepared up front and signed as Svix would.
  const bodies: string[] = [];
  for (let i = 1; i <= HOT_EVENTS; i++) {
    const state = sim!.store.updateMetadata(inv.id, { publicMetadata: { n: i } });
    bodies.push(JSON.stringify({ data: state, object: 'event', type: i % 2 ? 'organizationInvitation.created' : 'organizationInvitation.revoked', timestamp: Date.now() }));
  }
  // Posted straight from here over keep-alive sockets: the simulator's fetch-based delivery
  // cannot push 1,000 requests a second out of this process on two busy cores.
  const client = httpClient(service!.url, { sockets: 16 });
  const started = Date.now();
  const answers = await client.all(
    bodies.map((body) => ({ path: '/webhooks/clerk', headers: svixHeaders(creds.signingSecret, body), body })),
    16,
  );
  const sendMs = Date.now() - started;
  client.close();
  const result = await waitConverged({ sim: sim!, queue: q!.queue, dbPath, ids: [inv.id], timeoutMs: 30_000 });
  const calls = sim!.stats().getInvitationCalls[inv.id] ?? 0;
  const acked = answers.filter((a) => !(a instanceof Error) && a.status === 200).length;
  const logs = scanLogs(service!.output(), creds);
  recordResult('storms-one-invitation', {
    eventsSent: HOT_EVENTS,
    sendMs,
    acknowledged: acked,
    inMirror: result.comparison.equal,
    lost: result.comparison.missing.length + result.comparison.different.length,
    convergeMs: result.ms,
    bapiGets: calls,
    logSecretHits: logs.secrets,
    logEmails: logs.emails,
  });
  expect(acked).toBe(HOT_EVENTS);
  expect(result.comparison.missing).toEqual([]);
  expect(result.comparison.different).toEqual([]);
  expect(calls).toBeGreaterThanOrEqual(1);
  // The bound holds for a burst with no gap longer than the coalescing window (200 ms); on a
  // starved machine the 1,000 posts can spread out, and then the bound is not what is measured.
  if (sendMs <= 2000) expect(calls).toBeLessThanOrEqual(2);
  expect(logs.secrets).toEqual([]);
  expect(logs.emails).toEqual([]);
});
