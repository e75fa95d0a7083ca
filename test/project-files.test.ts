import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { envDescriptions, envSchema } from '../src/config.ts';
import { FIXTURES, SHARED_FIXTURES } from './helpers/fixtures.ts';

const ROOT = join(import.meta.dirname, '..');
const read = (f: string) => readFileSync(join(ROOT, f), 'utf8');
const ENV_NAMES = Object.keys(envSchema.shape);

describe('README', () => {
  const readme = read('README.md');
  it.each(ENV_NAMES)('documents %s in the configuration table with its description', (name) => {
    expect(readme).toContain(`| \`${name}\` | ${envDescriptions[name as keyof typeof envDescriptions]} |`);
  });

  it('documents no variable the schema does not read', () => {
    const table = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('## Commands'));
    const documented = [...table.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual([...ENV_NAMES].sort());
  });
});

describe('LICENSE', () => {
  it("is the license package.json names (npm packs it whatever `files` says)", () => {
    const pkg = JSON.parse(read('package.json')) as { license: string };
    expect(pkg.license).toBe('MIT');
    const text = read('LICENSE');
    expect(text.split('\n')[0]).toBe('MIT License');
    expect(text).toMatch(/^Copyright \(c\) \d{4} /m);
    expect(text).toContain('Permission is hereby granted, free of charge');
  });
});

describe('test/fixtures', () => {
  it.skipIf(!existsSync(SHARED_FIXTURES))('are byte-for-byte copies of ../shared/fixtures', () => {
    const shared = readdirSync(SHARED_FIXTURES).filter((f) => f.endsWith('.json')).sort();
    expect(readdirSync(FIXTURES).filter((f) => f.endsWith('.json')).sort()).toEqual(shared);
    for (const f of shared) expect(readFileSync(join(FIXTURES, f), 'utf8'), f).toBe(readFileSync(join(SHARED_FIXTURES, f), 'utf8'));
  });
});

describe('README commands table', () => {
  it('lists exactly the commands of the binary', async () => {
    const { commands } = await import('../src/cli/commands.ts');
    const readme = read('README.md');
    const table = readme.slice(readme.indexOf('## Commands'), readme.indexOf('### Running it'));
    const documented = [...table.matchAll(/^\| `([a-z]+)[ `]/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(Object.keys(commands).sort());
  });
});

describe('package.json', () => {
  const pkg = JSON.parse(read('package.json'));
  it('exposes the binary and the library', () => {
    expect(pkg.bin).toEqual({ 'clerk-invitation-mirror': './bin/clerk-invitation-mirror.js' });
    expect(pkg.exports['.'].default).toBe('./dist/index.js');
    expect(pkg.scripts.test).toMatch(/typecheck.*lint.*vitest run/);
  });

  it('pins better-sqlite3 to 12 (13 crashes on Node 20)', () => {
    expect(pkg.dependencies['better-sqlite3']).toMatch(/^\^?12\./);
  });
});

describe('.ci/run', () => {
  const ci = read('.ci/run');
  it('installs redis-server when missing, then runs npm ci and the README test command', () => {
    expect(ci).toMatch(/command -v redis-server/);
    expect(ci).toMatch(/apt-get install -y[^\n]*redis-server/);
    const readmeTest = /^npm test\b/m.exec(read('README.md'));
    expect(readmeTest).not.toBeNull();
    expect(ci.indexOf('npm ci')).toBeGreaterThan(-1);
    expect(ci.indexOf('npm test')).toBeGreaterThan(ci.indexOf('npm ci'));
  });
});
