import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createClerkClient } from '@clerk/backend';
import { describe, expect, it } from 'vitest';

const BIN = join(import.meta.dirname, '../bin/clerk-invitation-mirror.js');

describe('clerk-invitation-mirror simulator', () => {
  it('prints a full --help', () => {
    const r = spawnSync(process.execPath, [BIN, 'simulator', '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    for (const flag of ['--port', '--secret-key', '--signing-secret', '--webhook-url', '--seed', '--organizations', '--rate-limit', '--latency-ms', '--error-rate']) {
      expect(r.stdout).toContain(flag);
    }
  });

  it('refuses a malformed option with exit code 2', () => {
    const r = spawnSync(process.execPath, [BIN, 'simulator', '--error-rate', '2'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--error-rate');
  });

  it('serves seeded data with generated credentials and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [BIN, 'simulator', '--port', '0', '--organizations', '2', '--invitations', '3', '--seed', '5'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    try {
      while (!out.includes('Control API')) {
        if (child.exitCode !== null) throw new Error(`simulator exited early:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const url = /CLERK_API_URL=(\S+)/.exec(out)![1]!;
      const secretKey = /CLERK_SECRET_KEY=(sk_test_\w+)/.exec(out)![1]!;
      expect(out).toMatch(/CLERK_WEBHOOK_SIGNING_SECRET=whsec_\S+/);
      const clerk = createClerkClient({ secretKey, apiUrl: url });
      const orgs = await clerk.organizations.getOrganizationList({ limit: 10 });
      expect(orgs.totalCount).toBe(2);
      const invitations = await clerk.organizations.getOrganizationInvitationList({ organizationId: orgs.data[0]!.id });
      expect(invitations.totalCount).toBe(3);
    } finally {
      child.kill('SIGTERM');
    }
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(out).toContain('simulator stopped');
  });
});
