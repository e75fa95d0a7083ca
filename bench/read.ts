import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { organizationInvitations as inv } from '../src/mirror/schema.ts';
import { startService } from '../src/service.ts';
import { buildMirror } from './lookup.ts';
import { ratio, type Benchmark } from './result.ts';

const TOKEN = 'bench-read-api-key-0123456789abcdef';
// A handful of services with keep-alive pools; at 50 connections both servers only queue more (Little's law).
const CONNECTIONS = 10;
const DURATION_S = 5;
const ROUNDS = 3;

interface ClientOutput {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

/** autocannon in a child process (tsx), so it does not compete for this event loop. */
async function load(url: string, keysFile: string, durationS = DURATION_S): Promise<ClientOutput> {
  const input = JSON.stringify({ url, keysFile, token: TOKEN, connections: CONNECTIONS, durationS });
  const tsx = join(import.meta.dirname, '../node_modules/.bin/tsx');
  const { stdout } = await promisify(execFile)(tsx, [join(import.meta.dirname, 'read-client.ts'), input], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout) as ClientOutput;
}

/** The round with the median rate (its latencies with it). */
function median(runs: ClientOutput[]): ClientOutput {
  return [...runs].sort((a, b) => a.rps - b.rps)[Math.floor(runs.length / 2)]!;
}

/** The reference: node:http answering the same JSON from an in-memory Map, with the same bearer check skipped. */
function bareServer(path: string): Promise<{ server: Server; url: string }> {
  const db = new Database(path, { readonly: true });
  const byPath = new Map<string, Buffer>();
  for (const r of drizzle(db).select({ id: inv.id, org: inv.organizationId, raw: inv.raw }).from(inv).all()) {
    byPath.set(`/v1/organizations/${r.org}/invitations/${r.id}`, Buffer.from(r.raw!));
  }
  db.close();
  const server = createServer((req, res) => {
    const body = byPath.get(req.url ?? '');
    res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
    res.end(body ?? '{"errors":[]}');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` })));
}

export const readBench: Benchmark = {
  name: 'read.http_per_s',
  async run() {
    const dir = mkdtempSync(join(tmpdir(), 'cim-bench-read-'));
    try {
      const path = join(dir, 'mirror.db');
      const keys = buildMirror(path);
      const keysFile = join(dir, 'keys.json');
      writeFileSync(keysFile, JSON.stringify(keys));

      const config = loadConfig({ MIRROR_DB_PATH: path, MIRROR_API_KEY: TOKEN, PORT: '0', LOG_LEVEL: 'silent' });
      const service = await startService({ config, log: createLogger({ level: 'silent' }), roles: ['api'] });
      const bare = await bareServer(path);
      const rounds: { mirror: ClientOutput; baseline: ClientOutput }[] = [];
      try {
        // Warm-up: JIT, page cache, keep-alive pools.
        await load(service.url, keysFile, 2);
        await load(bare.url, keysFile, 2);
        // Alternating rounds, so that a slow spell of this shared VM hits both sides alike.
        for (let i = 0; i < ROUNDS; i++) rounds.push({ mirror: await load(service.url, keysFile), baseline: await load(bare.url, keysFile) });
      } finally {
        await service.stop();
        await new Promise((r) => bare.server.close(r));
      }
      const mirror = median(rounds.map((r) => r.mirror));
      const baseline = median(rounds.map((r) => r.baseline));
      // The ratio compares each round with its own baseline run (paired), then takes the median.
      const roundRatios = rounds.map((r) => ratio(r.mirror.rps, r.baseline.rps));
      const pairedRatio = [...roundRatios].sort((a, b) => a - b)[Math.floor(ROUNDS / 2)]!;
      const failed = rounds.filter((r) => r.mirror.non2xx || r.mirror.errors);
      if (failed.length) throw new Error(`read API answered non-2xx or errors in ${failed.length} round(s)`);
      return [
        {
          name: 'read.http_per_s',
          value: Math.round(mirror.rps),
          unit: 'req/s',
          baseline: Math.round(baseline.rps),
          ratio: pairedRatio,
          target: 'ratio >= 0.6, p99 <= 10 ms',
          extra: {
            rows: keys.length,
            connections: CONNECTIONS,
            rounds: `${ROUNDS}×${DURATION_S}s`,
            round_ratios: roundRatios.join(' '),
            p50_ms: mirror.p50,
            p99_ms: mirror.p99,
            baseline_p99_ms: baseline.p99,
          },
        },
      ];
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
