import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createMirror } from '../src/index.ts';
import { migrateMirror } from '../src/mirror/migrate.ts';
import { openMirrorDb } from '../src/mirror/open.ts';
import { MirrorWriter, type InvitationWrite } from '../src/mirror/upsert.ts';
import { seededRandom } from '../src/simulator/random.ts';
import { median, ratio, type Benchmark } from './result.ts';

const ORGS = 1_000;
const PER_ORG = 100;
const BATCH = 2_000;
const ROUNDS = 60;

/** A mirror of ORGS × PER_ORG invitations shaped like the fixture, written the way the worker writes. */
export function buildMirror(path: string): { org: string; id: string }[] {
  const conn = openMirrorDb({ path });
  migrateMirror(conn);
  const writer = new MirrorWriter(conn);
  const keys: { org: string; id: string }[] = [];
  for (let o = 0; o < ORGS; o++) {
    const org = `org_${String(o).padStart(6, '0')}bench`;
    const writes: InvitationWrite[] = [];
    for (let i = 0; i < PER_ORG; i++) {
      const id = `orginv_${String(o * PER_ORG + i).padStart(8, '0')}bench`;
      keys.push({ org, id });
      writes.push({
        kind: 'present',
        observedAt: Date.now(),
        source: 'backfill',
        invitation: {
          object: 'organization_invitation', id, email_address: `user${i}@org${o}.example.com`, role: 'org:member', role_name: 'Member',
          organization_id: org, inviter_id: 'user_2xQ5aB9cDdEe6Ff7Gg8Hh9Ii0Jj', public_inviter_data: null, status: 'pending',
          public_metadata: { team: 'compilers' }, private_metadata: { invitedVia: 'admin-console' },
          url: 'https://accounts.example.com/sign-up?__clerk_ticket=eyJhbGciOiJIUzI1NiJ9.e30.x',
          expires_at: 1766102400000, created_at: 1764796800000 + i, updated_at: 1764796800000 + i,
        },
      });
    }
    writer.writeMany(writes);
  }
  conn.sqlite.pragma('wal_checkpoint(TRUNCATE)');
  conn.sqlite.close();
  return keys;
}

export const lookupBench: Benchmark = {
  name: 'lookup.inprocess',
  async run() {
    const dir = mkdtempSync(join(tmpdir(), 'cim-bench-lookup-'));
    try {
      const path = join(dir, 'mirror.db');
      const keys = buildMirror(path);
      const random = seededRandom(42);
      const pick = () => keys[Math.floor(random() * keys.length)]!;

      const mirror = createMirror({ path, readonly: true });
      const bare = new Database(path, { readonly: true });
      const stmt = bare.prepare<[string], { raw: string }>('SELECT raw FROM organization_invitations WHERE id = ?');

      const oursBatch = async () => {
        const batch = Array.from({ length: BATCH }, pick);
        const t = process.hrtime.bigint();
        for (const k of batch) await mirror.getOrganizationInvitation({ organizationId: k.org, invitationId: k.id });
        return Number(process.hrtime.bigint() - t) / 1000 / BATCH;
      };
      const bareBatch = async () => {
        const batch = Array.from({ length: BATCH }, pick);
        const t = process.hrtime.bigint();
        for (const k of batch) JSON.parse(stmt.get(k.id)!.raw);
        return Number(process.hrtime.bigint() - t) / 1000 / BATCH;
      };
      // Warm both connections over the whole file, then interleave so drift hits both alike.
      for (let i = 0; i < 5; i++) {
        await oursBatch();
        await bareBatch();
      }
      const ours: number[] = [];
      const base: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        ours.push(await oursBatch());
        base.push(await bareBatch());
      }
      mirror.close();
      bare.close();
      const value = Math.round(median(ours) * 100) / 100;
      const baseline = Math.round(median(base) * 100) / 100;
      return [
        {
          name: 'lookup.inprocess',
          value,
          unit: 'us/lookup (median)',
          baseline,
          ratio: ratio(value, baseline),
          target: 'ratio <= 1.5',
          extra: { rows: keys.length, organizations: ORGS, lookups: ROUNDS * BATCH },
        },
      ];
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
