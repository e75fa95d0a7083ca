// Not a benchmark: profiles the read API under 8 s of autocannon load (from a child process)
// and prints inclusive time per function, per request. `tsx bench/profile-read.ts`.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { startService } from '../src/service.ts';
import { buildMirror } from './lookup.ts';
import { summarizeProfile } from './profile-summary.ts';

const TOKEN = 'bench-read-api-key-0123456789abcdef';
const dir = mkdtempSync(join(tmpdir(), 'cim-profile-read-'));
const path = join(dir, 'mirror.db');
const keysFile = join(dir, 'keys.json');
writeFileSync(keysFile, JSON.stringify(buildMirror(path)));
const config = loadConfig({ MIRROR_DB_PATH: path, MIRROR_API_KEY: TOKEN, PORT: '0', LOG_LEVEL: 'silent' });
const service = await startService({ config, log: createLogger({ level: 'silent' }), roles: ['api'] });
const load = async (durationS: number) => {
  const input = JSON.stringify({ url: service.url, keysFile, token: TOKEN, connections: 10, durationS });
  const { stdout } = await promisify(execFile)(join(import.meta.dirname, '../node_modules/.bin/tsx'), [join(import.meta.dirname, 'read-client.ts'), input]);
  return JSON.parse(stdout) as { rps: number };
};
await load(2);
const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 250 });
await session.post('Profiler.start');
const out = await load(8);
const { profile } = await session.post('Profiler.stop');
await service.stop();
rmSync(dir, { recursive: true, force: true });
const N = out.rps * 8;
console.log(out);
console.log(summarizeProfile(profile, { units: N, unit: 'req', inclusive: 50, self: 30 }));
