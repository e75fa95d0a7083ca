import { createClerkClient } from '@clerk/backend';
import { isClerkAPIResponseError } from '@clerk/backend/errors';
import { afterEach, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator, type SimulatorOptions } from '../src/simulator/index.ts';

const secretKey = 'sk_test_simulatorFaultsTestKey0123456789';
const signingSecret = `whsec_${Buffer.from('simulator-faults-test-signing-secret').toString('base64')}`;
const auth = { authorization: `Bearer ${secretKey}` };

const running: Simulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

async function start(opts: Partial<SimulatorOptions> = {}): Promise<{ sim: Simulator; orgId: string; invId: string; path: string }> {
  const sim = await startSimulator({ secretKey, signingSecret, rateLimit: 0, ...opts });
  running.push(sim);
  const orgId = sim.store.createOrganization().id;
  const invId = sim.store.createInvitation(orgId, { emailAddress: 'ada@example.com' }).id;
  return { sim, orgId, invId, path: `${sim.url}/v1/organizations/${orgId}/invitations/${invId}` };
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

/**
 * One request's fate. A hang is read from the simulator's own count (recorded the moment the
 * request arrives) rather than from a client timeout, so a slow machine cannot pass for a hang.
 */
async function outcome(sim: Simulator, url: string): Promise<string> {
  const before = sim.stats();
  const controller = new AbortController();
  const answer = fetch(url, { headers: auth, signal: controller.signal }).then(
    async (res) => {
      await res.arrayBuffer();
      return String(res.status);
    },
    () => 'drop',
  );
  while (sim.stats().requests === before.requests) await new Promise((r) => setTimeout(r, 2));
  if ((sim.stats().byStatus.hang ?? 0) > (before.byStatus.hang ?? 0)) {
    controller.abort();
    await answer;
    return 'hang';
  }
  return answer;
}

describe('simulator faults', () => {
  it('answers 5xx with Clerk error JSON at error rate 1', async () => {
    const { sim, orgId, invId } = await start({ faults: { errorRate: 1 } });
    const clerk = createClerkClient({ secretKey, apiUrl: sim.url });
    for (let i = 0; i < 5; i++) {
      const err = await caught(clerk.organizations.getOrganizationInvitation({ organizationId: orgId, invitationId: invId }));
      if (!isClerkAPIResponseError(err)) throw new Error(`expected a ClerkAPIResponseError, got ${String(err)}`);
      expect([500, 502, 503]).toContain(err.status);
      expect(err.errors[0]?.code).toBeTruthy();
    }
    expect(sim.stats().getInvitationCalls[invId]).toBe(5);
  });

  it('never answers at hang rate 1, so a client timeout aborts, and close() still returns', async () => {
    const { sim, path } = await start({ faults: { hangRate: 1 } });
    const err = await caught(fetch(path, { headers: auth, signal: AbortSignal.timeout(200) }));
    expect((err as Error).name).toBe('TimeoutError');
    // A second hung request still open when the simulator closes.
    const pending = caught(fetch(path, { headers: auth }));
    await new Promise((r) => setTimeout(r, 50));
    await sim.close();
    expect(await pending).toBeInstanceOf(Error);
    expect(sim.stats().byStatus.hang).toBe(2);
  });

  it('drops the connection at drop rate 1', async () => {
    const { sim, path } = await start({ faults: { dropRate: 1 } });
    const err = await caught(fetch(path, { headers: auth }));
    expect(err).toBeInstanceOf(TypeError);
    expect(sim.stats().byStatus.drop).toBeGreaterThanOrEqual(1);
  });

  it('adds at least the configured latency', async () => {
    const { sim, path } = await start();
    sim.setFaults({ latencyMs: 150 });
    const t0 = performance.now();
    const res = await fetch(path, { headers: auth });
    expect(res.status).toBe(200);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(145);
    sim.setFaults({ latencyMs: { min: 100, max: 120 } });
    const t1 = performance.now();
    expect((await fetch(path, { headers: auth })).status).toBe(200);
    expect(performance.now() - t1).toBeGreaterThanOrEqual(95);
  });

  it('replays the same sequence of fault outcomes under the same seed', async () => {
    const faults = { errorRate: 0.3, dropRate: 0.15, hangRate: 0.1 };
    const sequences: string[][] = [];
    for (const seed of [42, 42, 43]) {
      const { sim, path } = await start({ seed, faults });
      const seq: string[] = [];
      for (let i = 0; i < 30; i++) seq.push(await outcome(sim, path));
      sequences.push(seq);
    }
    const [a, b, c] = sequences as [string[], string[], string[]];
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    // Every kind of fate occurs, so the comparison above is not of thirty 200s.
    expect(new Set(a.map((o) => (o.startsWith('5') ? '5xx' : o)))).toEqual(new Set(['200', '5xx', 'drop', 'hang']));
  });

  it('answers 429 during a configured burst, with Retry-After until it ends', async () => {
    const { sim, path } = await start();
    sim.setFaults({ rateLimitBurst: { untilMs: sim.store.now() + 60_000 } });
    const res = await fetch(path, { headers: auth });
    expect(res.status).toBe(429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(59);
    sim.store.advanceClock(60_000);
    expect((await fetch(path, { headers: auth })).status).toBe(200);
  });
});

describe('simulator rate limit', () => {
  it('gives 429 with retryAfter once the window is used up', async () => {
    const { sim, orgId, invId } = await start({ rateLimit: 3, rateWindowMs: 10_000 });
    const clerk = createClerkClient({ secretKey, apiUrl: sim.url });
    const get = () => clerk.organizations.getOrganizationInvitation({ organizationId: orgId, invitationId: invId });
    for (let i = 0; i < 3; i++) await get();
    const err = await caught(get());
    if (!isClerkAPIResponseError(err)) throw new Error(`expected a ClerkAPIResponseError, got ${String(err)}`);
    expect(err.status).toBe(429);
    expect(err.errors[0]?.code).toBe('too_many_requests');
    expect(err.retryAfter).toBeGreaterThanOrEqual(1);
    expect(err.retryAfter).toBeLessThanOrEqual(10);
    const stats = sim.stats();
    expect(stats.rateLimited).toBe(1);
    expect(stats.maxAcceptedPerWindow).toBe(3);
    expect(stats.byStatus).toEqual({ 200: 3, 429: 1 });
  });

  it('does not let refused requests extend the block past the window', async () => {
    const { sim, path } = await start({ rateLimit: 2, rateWindowMs: 10_000 });
    expect((await fetch(path, { headers: auth })).status).toBe(200);
    expect((await fetch(path, { headers: auth })).status).toBe(200);
    sim.store.advanceClock(9_000);
    for (let i = 0; i < 5; i++) {
      const res = await fetch(path, { headers: auth });
      expect(res.status).toBe(429);
      expect(res.headers.get('retry-after')).toBe('1');
    }
    sim.store.advanceClock(1_000);
    expect((await fetch(path, { headers: auth })).status).toBe(200);
    expect(sim.stats().rateWindows.map((w) => [w.accepted, w.refused])).toEqual([
      [2, 5],
      [1, 0],
    ]);
  });

  it('defaults to Clerk limits: 100 for sk_test_, 1000 for sk_live_', async () => {
    const test = await startSimulator({ secretKey, signingSecret });
    const live = await startSimulator({ secretKey: 'sk_live_simulatorFaultsTestKey', signingSecret });
    running.push(test, live);
    expect(test.stats().rateLimit).toEqual({ limit: 100, windowMs: 10_000 });
    expect(live.stats().rateLimit).toEqual({ limit: 1000, windowMs: 10_000 });
  });

  it('does not count unauthenticated requests against the instance', async () => {
    const { sim, path } = await start({ rateLimit: 1 });
    for (let i = 0; i < 3; i++) expect((await fetch(path, { headers: { authorization: 'Bearer sk_test_other' } })).status).toBe(401);
    expect((await fetch(path, { headers: auth })).status).toBe(200);
    expect(sim.stats().rateLimited).toBe(0);
  });
});
