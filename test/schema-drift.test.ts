// The drizzle schema (src/mirror/schema.ts) and the committed migrations (migrations/) must
// agree: a change to the schema without `npm run db:generate` would ship tables the code does
// not describe. Runs drizzle-kit as `npm run db:generate` does (drizzle.config.ts), into a copy.
import { execFile } from 'node:child_process';
import { cpSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import drizzleConfig from '../drizzle.config.ts';
import { tempDir } from './helpers/fixtures.ts';

const ROOT = join(import.meta.dirname, '..');
const tmp = tempDir('cim-schema-drift-');
afterAll(tmp.cleanup);

it('the migrations are in sync with the drizzle schema (drizzle-kit generates nothing new)', async () => {
  const out = join(tmp.path, 'migrations-copy');
  cpSync(join(ROOT, drizzleConfig.out!), out, { recursive: true });
  const before = readdirSync(out, { recursive: true, encoding: 'utf8' }).sort();
  expect(before.filter((f) => f.endsWith('.sql')).length).toBeGreaterThan(0);
  // drizzle-kit prefixes --out with './', so it must be relative.
  const { stdout, stderr } = await promisify(execFile)(
    join(ROOT, 'node_modules/.bin/drizzle-kit'),
    ['generate', '--dialect', drizzleConfig.dialect, '--schema', String(drizzleConfig.schema), '--out', relative(ROOT, out)],
    { cwd: ROOT },
  );
  expect(stderr).toBe('');
  expect(stdout).toMatch(/No schema changes/);
  expect(readdirSync(out, { recursive: true, encoding: 'utf8' }).sort()).toEqual(before);
});
