import { spawn } from 'node:child_process';
import { renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, expect, it } from 'vitest';
import { createMirror } from '../src/index.ts';
import { openMirrorDb } from '../src/mirror/open.ts';
import { ReplicaWriter } from '../src/replica/writer.ts';
import { storedStateOf } from '../src/state/codec.ts';
import { invitation, tempDir, waitUntil } from './helpers/fixtures.ts';
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

it('a read-only mirror opens its file again once it was replaced (a backup restored by rename), not while the old file\'s -wal is still next to it', async () => {
  const inv = (id: string, updatedAt: number) => invitation({ id, organization_id: 'org_r', updated_at: updatedAt });
  const path = seedMirror(tmp.path, 'replaced.db', [inv('orginv_r1', 1)]);
  const reader = createMirror({ path, readonly: true });
  const updatedAt = async (id: string) => (await reader.getOrganizationInvitation({ organizationId: 'org_r', invitationId: id })).updatedAt;
  // A writer keeps the file open, as a replica does: its changes sit in the -wal next to the file.
  const writer = openMirrorDb({ path });
  new ReplicaWriter(writer).apply([storedStateOf(inv('orginv_r1', 2))]);
  expect(await updatedAt('orginv_r1')).toBe(2);

  const backup = seedMirror(tmp.path, 'backup.db', [inv('orginv_r1', 7), inv('orginv_r2', 7)]);
  renameSync(backup, path);
  // A new open would read the old file's -wal into the new one: the reader keeps the old file.
  await sleep(2500);
  expect(await updatedAt('orginv_r1')).toBe(2);

  // What the replica does once it notices: its old file's -wal and -shm go.
  writer.close();
  rmSync(`${path}-wal`, { force: true });
  rmSync(`${path}-shm`, { force: true });
  await waitUntil(async () => (await updatedAt('orginv_r1')) === 7, 'the reader to open the restored file', 5000);
  expect(await updatedAt('orginv_r2')).toBe(7);
  reader.close();
});
