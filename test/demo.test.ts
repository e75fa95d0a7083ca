import { afterAll, describe, expect, it } from 'vitest';
import { killAllChildren, runCli } from './helpers/child.ts';

afterAll(killAllChildren);

describe('demo (short form)', () => {
  it('runs with nothing configured, shows a summary and passes its check against the simulator', async () => {
    // No REDIS_URL: the demo starts its own redis-server, as on a fresh machine.
    const r = await runCli(['demo', '--organizations', '3', '--invitations', '4', '--new', '40', '--seed', '3'], {});
    expect(r.output).toMatch(/CHECK PASSED: both replicas hold exactly the simulator's \d+ invitations/);
    expect(r.code).toBe(0);
    for (const line of ['webhooks delivered', 'invitation events', 'sync jobs', 'BAPI calls', 'replica lag', 'local lookups', 'replicas']) {
      expect(r.output).toMatch(new RegExp(`^  ${line} +\\S`, 'm'));
    }
    const accepted = Number(/invitation events +(\d+) accepted/.exec(r.output)?.[1]);
    expect(accepted).toBeGreaterThanOrEqual(40);
    expect(r.output).toMatch(/0 failed/);
    expect(r.output).not.toMatch(/@example\.com/);
  });

  it('rejects a bad option with a usage error', async () => {
    const r = await runCli(['demo', '--new', 'lots'], {});
    expect(r.code).toBe(2);
    expect(r.output).toMatch(/--new must be a whole number/);
  });
});
