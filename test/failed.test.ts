import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { SYNC_QUEUE } from '../src/queue/names.ts';
import { startService, type Service } from '../src/service.ts';
import { binaryRig, runCli } from './helpers/child.ts';
import { waitUntil } from './helpers/fixtures.ts';
import { SECRET_KEY, SIGNING_SECRET } from './helpers/pipeline.ts';

const { tmp, sim, redis } = await binaryRig('failed');
const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
const queue = new Queue(SYNC_QUEUE, { connection, prefix: redis.keys.queuePrefix });
afterAll(async () => {
  await queue.close();
  await connection.quit();
});

function serviceWith(secretKey: string): Promise<Service> {
  const config = loadConfig({
    CLERK_SECRET_KEY: secretKey,
    CLERK_WEBHOOK_SIGNING_SECRET: SIGNING_SECRET,
    CLERK_API_URL: sim.url,
    ...redis.env,
    MIRROR_DB_PATH: join(tmp.path, 'mirror.db'),
    PORT: '0',
  });
  return startService({ config, log: createLogger({ level: 'silent' }), coalesceMs: 0 });
}


describe('failed list / failed retry', () => {
  it('shows jobs refused with a wrong secret key and re-queues them once the key is fixed', async () => {
    const org = sim.store.createOrganization({ name: 'Failing' });
    const wrong = await serviceWith('sk_test_thisKeyIsNotTheSimulators0000');
    const ids: string[] = [];
    try {
      sim.delivery.addEndpoint(`${wrong.url}/webhooks/clerk`);
      for (let i = 0; i < 3; i++) ids.push(sim.store.createInvitation(org.id, { emailAddress: `failing${i}@example.com` }).id);
      // 401 is unrecoverable: no retries, straight to the failed set.
      await waitUntil(async () => (await queue.getFailedCount()) === 3, 'three failed jobs');
      expect(wrong.stats.jobs.retried).toBe(0);
      // Not ready while Clerk refuses the key, and /readyz says why.
      const ready = await fetch(`${wrong.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { failing: Record<string, string> }).failing.bapi).toMatch(/BAPI refuses CLERK_SECRET_KEY \(401\)/);
    } finally {
      sim.delivery.removeEndpoint(`${wrong.url}/webhooks/clerk`);
      await wrong.stop();
    }

    const env = redis.env;
    const table = await runCli(['failed', 'list'], env);
    expect(table.code).toBe(0);
    expect(table.output).toMatch(/^3 failed job\(s\)$/m);
    for (const id of ids) expect(table.output).toContain(`${org.id}/${id}`);
    expect(table.output).not.toMatch(/@example\.com/);
    // A header row, then one row per job, every column starting where its header does.
    const lines = table.output.trimEnd().split('\n');
    const header = lines[1]!;
    expect(header).toMatch(/^JOB +KIND +INVITATION\/KEY +ATTEMPTS +FAILED AT +REASON$/);
    const starts = ['KIND', 'INVITATION/KEY', 'ATTEMPTS', 'FAILED AT', 'REASON'].map((h) => header.indexOf(h));
    const rows = lines.slice(2);
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      for (const at of starts) expect(row.slice(at - 2, at + 1)).toMatch(/^ {2}\S$/);
      const cell = (i: number) => row.slice(starts[i]!, starts[i + 1]).trim();
      expect(cell(0)).toBe('invitation');
      expect(ids.map((id) => `${org.id}/${id}`)).toContain(cell(1));
      expect(cell(2)).toBe('1');
      expect(cell(3)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      expect(row.slice(starts[4])).toMatch(/401/);
    }

    const json = await runCli(['failed', 'list', '--json', '--limit', '2'], env);
    const jsonRows = json.output.trim().split('\n').map((l) => JSON.parse(l) as { id: string; data: { invitationId: string }; failedReason: string });
    expect(jsonRows).toHaveLength(2);
    expect(jsonRows[0]!.failedReason).toMatch(/401/);

    // Retrying one unknown id reports it and exits 1, without touching the others.
    const unknown = await runCli(['failed', 'retry', 'no-such-job'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.output).toMatch(/job no-such-job is not in the failed set/);
    expect(await queue.getFailedCount()).toBe(3);

    const fixed = await serviceWith(SECRET_KEY);
    try {
      const one = await runCli(['failed', 'retry', jsonRows[0]!.id], env);
      expect(one).toMatchObject({ code: 0 });
      expect(one.output).toMatch(/1 job\(s\) re-queued/);
      const all = await runCli(['failed', 'retry', '--all'], env);
      expect(all.output).toMatch(/2 job\(s\) re-queued/);
      await waitUntil(async () => (await queue.getFailedCount()) === 0 && (await queue.getCompletedCount()) >= 3, 'the retried jobs');
      const stored = fixed.mirror!.sqlite.prepare(`SELECT id FROM organization_invitations WHERE organization_id = ?`).pluck().all(org.id);
      expect(new Set(stored)).toEqual(new Set(ids));
    } finally {
      await fixed.stop();
    }
  });

  it('refuses a bare `retry` and an unknown action', async () => {
    expect((await runCli(['failed', 'retry'], redis.env)).code).toBe(2);
    expect((await runCli(['failed', 'purge'], redis.env)).code).toBe(2);
  });
});
