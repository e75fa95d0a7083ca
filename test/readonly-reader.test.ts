import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { createMirror } from '../src/index.ts';
import { invitation, tempDir } from './helpers/fixtures.ts';
import { seedMirror } from './helpers/mirror.ts';

const tmp = tempDir();
afterAll(tmp.cleanup);

it('a read-only mirror in another process reads consistent, monotonic rows while a writer writes', async () => {
  const path = seedMirror(
    tmp.path,
    'shared.db',
    Array.from({ length: 5 }, (_, i) => invitation({ id: `orginv_c${i}`, organization_id: 'org_c', updated_at: 0 })),
  );
  const reader = createMirror({ path, readonly: true });
  const writer = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'helpers/write-versions.ts'), path, JSON.stringify(Array.from({ length: 600 }, (_, i) => i + 1))], {
    cwd: join(import.meta.dirname, '..'),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  writer.stderr.on('data', (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => writer.on('exit', resolve));
  let running = true;
  void exited.then(() => (running = false));

  const last = new Map<string, number>();
  let reads = 0;
  let sawProgress = 0;
  while (running) {
    for (let i = 0; i < 5; i++) {
      const got = await reader.getOrganizationInvitation({ organizationId: 'org_c', invitationId: `orginv_c${i}` });
      // The indexed copy and the JSON come from one row version: never torn.
      expect((got.raw as { updated_at: number }).updated_at).toBe(got.updatedAt);
      const prev = last.get(got.id) ?? 0;
      expect(got.updatedAt).toBeGreaterThanOrEqual(prev);
      if (got.updatedAt > prev && prev > 0) sawProgress++;
      last.set(got.id, got.updatedAt);
      reads++;
    }
    await new Promise((r) => setImmediate(r));
  }
  expect(await exited).toBe(0);
  expect(stderr).toBe('');
  expect(reads).toBeGreaterThan(50);
  expect(sawProgress).toBeGreaterThan(0);
  for (let i = 0; i < 5; i++) {
    expect((await reader.getOrganizationInvitation({ organizationId: 'org_c', invitationId: `orginv_c${i}` })).updatedAt).toBe(600);
  }
  reader.close();
});
