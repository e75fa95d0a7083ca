import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createMirror } from '../src/index.ts';
import { migrateMirror } from '../src/mirror/migrate.ts';
import { openMirrorDb } from '../src/mirror/open.ts';
import { ReplicaWriter } from '../src/replica/writer.ts';
import { storedStateOf } from '../src/state/codec.ts';
import { benchInvitation } from './invitations.ts';
import { seededRandom } from '../src/simulator/random.ts';
import { median, ratio, type Benchmark } from './result.ts';

const ORGS = 1_000;
const PER_ORG = 100;
const BATCH = 2_000;
const ROUNDS = 60;

/** A mirror of ORGS × PER_ORG invitations shaped like the fixture, written the way a replica writes. */
export function buildMirror(path: string): { org: string; id: string }[] {
  const conn = openMirrorDb({ path });
  migrateMirror(conn);
  const writer = new ReplicaWriter(conn);
  const keys: { org: string; id: string }[] = [];
  for (let o = 0; o < ORGS; o++) {
    const batch = Array.from({ length: PER_ORG }, (_, i) => benchInvitation(o, i, PER_ORG));
    for (const inv of batch) keys.push({ org: inv.organization_id, id: inv.id });
    writer.apply(batch.map((inv) => storedStateOf(inv)));
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
      // The baseline is the simplest lookup there is: plain SQL on better-sqlite3, no drizzle.
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
