import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { commands } from '../src/cli/commands.ts';
import { tempDir } from './helpers/fixtures.ts';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin/clerk-invitation-mirror.js');
const tmp = tempDir();
afterAll(tmp.cleanup);

async function cli(args: string[], env: Record<string, string> = {}, cwd = tmp.path) {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], { cwd, env: { PATH: process.env.PATH!, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('clerk-invitation-mirror binary', () => {
  it('prints its version (package.json) with --version', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V', 'version']) {
      const r = await cli([flag]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`clerk-invitation-mirror ${version} (node ${process.versions.node})\n`);
    }
  });

  it('lists every command in --help', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    for (const name of Object.keys(commands)) expect(r.stdout).toContain(`  ${name}`);
  });

  it.each(Object.keys(commands))('%s --help prints its usage', async (name) => {
    const r = await cli([name, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: clerk-invitation-mirror ${name}`));
  });

  it('rejects an unknown command', async () => {
    const r = await cli(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command "frobnicate"/);
  });

  it('reads .env in the current directory, or the file --dotenv names (not --env-file, which Node itself takes even after the script); variables already set win', async () => {
    const dir = join(tmp.path, 'with-env');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, '.env'), '# settings\nMIRROR_DB_PATH=./from-dotenv.db\nLOG_LEVEL="warn"\n');
    writeFileSync(join(dir, 'other.env'), 'MIRROR_DB_PATH=./from-other.db\n');
    expect((await cli(['migrate'], {}, dir)).stdout).toBe(`mirror at ./from-dotenv.db: 4 migration(s) applied, 4 in all\n`);
    expect(existsSync(join(dir, 'from-dotenv.db'))).toBe(true);
    expect((await cli(['migrate'], { MIRROR_DB_PATH: './from-env.db' }, dir)).stdout).toMatch(/^mirror at \.\/from-env\.db:/);
    expect((await cli(['migrate', '--dotenv', 'other.env'], {}, dir)).stdout).toMatch(/^mirror at \.\/from-other\.db:/);
    // A bad value in the file is named like one in the environment.
    writeFileSync(join(dir, 'bad.env'), 'LOG_LEVEL=chatty\n');
    const bad = await cli(['migrate', '--dotenv=bad.env'], {}, dir);
    expect(bad.code).toBe(78);
    expect(bad.stderr).toMatch(/LOG_LEVEL: expected one of/);
    const missing = await cli(['migrate', '--dotenv', 'nope.env'], {}, dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read the env file .*nope\.env: ENOENT/);
  });

  it('migrate creates the mirror, and is idempotent', async () => {
    const db = join(tmp.path, 'sub/m.db');
    const first = await cli(['migrate', '--db', db]);
    expect(first).toMatchObject({ code: 0, stdout: `mirror at ${db}: 4 migration(s) applied, 4 in all\n` });
    expect((await cli(['migrate'], { MIRROR_DB_PATH: db })).stdout).toMatch(/0 migration\(s\) applied/);
  });

  it('stops with one line naming a malformed variable', async () => {
    const r = await cli(['migrate'], { MIRROR_DB_PATH: join(tmp.path, 'x.db'), LOG_LEVEL: 'chatty' });
    expect(r.code).toBe(78);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^clerk-invitation-mirror migrate: LOG_LEVEL: expected one of/)]);
  });

  it('a failed migration stops with a non-zero exit', async () => {
    const db = join(tmp.path, 'broken.db');
    const Database = (await import('better-sqlite3')).default;
    const d = new Database(db);
    d.exec('CREATE TABLE organization_invitations (x int)');
    d.close();
    const r = await cli(['migrate', '--db', db]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/already exists/);
  });
});
