// The package as npm publishes it: a build of the sources, `npm pack`ed, installed with
// `--omit=dev` into an empty project, type-checked by TypeScript consumers (node10 and
// nodenext resolution, no @types/better-sqlite3) and run on Node 22 (the library and the bin).
//
// Cost: the install skips install scripts and gets better-sqlite3's native module for Node 22
// from a cache under the OS temp dir (filled from this checkout's own build when the suite runs
// on Node 22, else compiled once with Node 22's headers). Node 22 itself, when the suite runs
// on another Node, comes from the npm registry (`node-<platform>-<arch>`), cached in the same
// place as .ci/node22's.
import { execFile } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { builtinModules } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  main: string;
  types: string;
  files: string[];
  dependencies: Record<string, string>;
  peerDependencies?: Record<string, string>;
};
const CACHE = join(tmpdir(), 'clerk-invitation-mirror-node22');
const TSC = join(ROOT, 'node_modules/.bin/tsc');
const SETUP_MS = 15 * 60_000;

/** The environment without what an enclosing `npm test` exports (npm_config_*, npm_package_*, …). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  return { ...env, ...extra };
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], { cwd, env = cleanEnv() }: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function must(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${opts.cwd}) exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const versionOf = (dir: string) => (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;

/** Moves `from` to `to` unless another run put a `to` there first (then drops `from`). */
function publish(from: string, to: string) {
  try {
    rmSync(to, { recursive: true, force: true });
    renameSync(from, to);
  } catch (err) {
    rmSync(from, { recursive: true, force: true });
    if (!existsSync(to)) throw err;
  }
}

/** Node 22's home (bin/node, include/node) from the npm registry, installed once into CACHE. */
async function node22Home(): Promise<string> {
  const name = `${process.platform === 'darwin' && process.arch === 'arm64' ? 'node-bin' : 'node'}-${process.platform}-${process.arch}`;
  const runtime = join(CACHE, `runtime-${name}`);
  const home = join(runtime, 'node_modules', name);
  const bin = join(home, 'bin/node');
  const ok = async () => existsSync(bin) && (await run(bin, ['-p', 'process.versions.node'], { cwd: CACHE })).stdout.startsWith('22.');
  mkdirSync(CACHE, { recursive: true });
  if (!(await ok())) {
    const staging = mkdtempSync(join(CACHE, 'runtime.'));
    writeFileSync(join(staging, 'package.json'), '{ "private": true }\n');
    await must('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', `${name}@22`], { cwd: staging });
    publish(staging, runtime);
    if (!(await ok())) throw new Error(`no Node 22 at ${bin} after installing ${name}@22`);
  }
  return home;
}

let work: string;
let consumer: string;
let node22: string;
let packed: { filename: string; files: { path: string }[] };
const installed = () => join(consumer, 'node_modules', pkg.name);

/** The packed tarball: this checkout's sources built the way `npm run build` builds them, then `npm pack`. */
async function pack(): Promise<string> {
  const stage = join(work, 'stage');
  const copied = new Set(['package.json', 'tsconfig.json', 'tsconfig.build.json', 'src', 'README.md', 'LICENSE', ...pkg.files]);
  copied.delete('dist');
  for (const f of copied) if (existsSync(join(ROOT, f))) cpSync(join(ROOT, f), join(stage, f), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(stage, 'node_modules'), 'dir');
  await must('npm', ['run', 'build'], { cwd: stage });
  const out = await must('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: stage });
  packed = (JSON.parse(out) as (typeof packed)[])[0]!;
  return join(work, packed.filename);
}

/** Puts a better_sqlite3.node built for Node 22 into the consumer's better-sqlite3 (installed without scripts). */
async function nativeModuleFor22() {
  const target = join(consumer, 'node_modules/better-sqlite3');
  const release = join(target, 'build/Release');
  const version = versionOf(target);
  const abi = (await must(node22, ['-p', 'process.versions.modules'], { cwd: work })).trim();
  const cached = join(CACHE, `better-sqlite3-${version}-abi${abi}-${process.platform}-${process.arch}.node`);
  if (!existsSync(cached)) {
    const own = join(ROOT, 'node_modules/better-sqlite3');
    let built = join(own, 'build/Release/better_sqlite3.node');
    if (!(process.versions.modules === abi && versionOf(own) === version && existsSync(built))) {
      const home = await node22Home();
      await must('npm', ['rebuild', 'better-sqlite3', '--no-audit', '--no-fund'], {
        cwd: consumer,
        env: cleanEnv({ PATH: `${join(home, 'bin')}:${process.env.PATH}`, npm_config_nodedir: home }),
      });
      built = join(release, 'better_sqlite3.node');
    }
    mkdirSync(CACHE, { recursive: true });
    const staging = `${cached}.${process.pid}`;
    copyFileSync(built, staging);
    publish(staging, cached);
  }
  mkdirSync(release, { recursive: true });
  copyFileSync(cached, join(release, 'better_sqlite3.node'));
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'cim-package-'));
  const tarball = await pack();
  consumer = join(work, 'consumer');
  mkdirSync(consumer);
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
  await must('npm', ['install', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball], { cwd: consumer });
  node22 = process.versions.node.startsWith('22.') ? process.execPath : join(await node22Home(), 'bin/node');
  await nativeModuleFor22();
}, SETUP_MS);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('holds the compiled library, its typings, the bin and the migrations, and no sources', () => {
    const files = packed.files.map((f) => f.path);
    for (const f of [pkg.main, pkg.types, 'dist/cli/main.js', 'bin/clerk-invitation-mirror.js', 'package.json', 'LICENSE']) expect(files).toContain(f.replace(/^\.\//, ''));
    expect(files.some((f) => f.startsWith('migrations/') && f.endsWith('.sql'))).toBe(true);
    expect(files.filter((f) => /^(src|test|bench)\//.test(f) || f.endsWith('.test.js'))).toEqual([]);
  });

  it('imports at run time only its dependencies, peer dependencies and Node built-ins', () => {
    const allowed = new Set([...Object.keys(pkg.dependencies), ...Object.keys(pkg.peerDependencies ?? {})]);
    const dist = join(installed(), 'dist');
    const found = new Set<string>();
    for (const f of readdirSync(dist, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js'))) {
      const text = readFileSync(join(dist, f), 'utf8');
      const specifiers = [
        ...text.matchAll(/^(?:import|export)\s[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/gm), // static imports and re-exports
        ...text.matchAll(/^import\s*['"]([^'"]+)['"]/gm), // side-effect imports
        ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g), // dynamic imports of a literal
      ].map((m) => m[1]!);
      for (const s of specifiers) if (!s.startsWith('.')) found.add(s);
    }
    const packages = [...found].map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2) : s.split('/').slice(0, 1)).join('/'));
    expect(packages.length).toBeGreaterThan(5);
    expect(packages.filter((p) => !allowed.has(p) && !p.startsWith('node:') && !builtinModules.includes(p))).toEqual([]);
  });

  it('installs without the development tools (tsx, esbuild, typescript) and without @types/better-sqlite3', () => {
    for (const dev of ['tsx', 'esbuild', 'typescript', '@types/better-sqlite3']) expect(existsSync(join(consumer, 'node_modules', dev)), dev).toBe(false);
    // The peer dependency is there, once, at the top (the consumer's own copy).
    expect(existsSync(join(consumer, 'node_modules/@clerk/backend/package.json'))).toBe(true);
    expect(existsSync(join(installed(), 'node_modules/@clerk/backend'))).toBe(false);
  });
});

/**
 * A consumer's code. Each @ts-expect-error is an error only while the types resolved: were a
 * type `any` (an import of the published .d.ts not found), the directive itself would fail.
 */
const CONSUMER_TS = `import { ConfigError, createMirror, createReplica, getOrganizationInvitation, loadConfig, MirrorBehindError, type Mirror, type OrganizationInvitation, type ReplicaStatus } from '${pkg.name}';

export async function lookup(mirror: Mirror): Promise<OrganizationInvitation> {
  const invitation = await mirror.getOrganizationInvitation({ organizationId: 'org_1', invitationId: 'orginv_1' });
  // @ts-expect-error the id is a string (Clerk's OrganizationInvitation)
  const id: number = invitation.id;
  // @ts-expect-error organizationId is a string
  await getOrganizationInvitation({ organizationId: 1, invitationId: 'orginv_1' });
  return id ? invitation : getOrganizationInvitation({ organizationId: 'org_1', invitationId: 'orginv_1' });
}

export async function state(redisUrl: string): Promise<ReplicaStatus['state']> {
  const replica = await createReplica({ redisUrl, path: ':memory:' });
  const status = await replica.status();
  // @ts-expect-error a phase is a string
  const phase: number = status.state;
  await replica.close();
  return phase ? status.state : 'stale';
}

// @ts-expect-error the port is a number
export const port: string = loadConfig({}).http.port;
export const errors = [ConfigError, MirrorBehindError];
export const open = () => createMirror({ path: 'mirror.db', readonly: true });
`;

describe('a TypeScript consumer of the installed package (the project’s own tsc)', () => {
  const compilerOptions = { target: 'es2022', strict: true, noEmit: true, types: ['node'] };
  const tsc = async (name: string, options: Record<string, unknown>) => {
    writeFileSync(join(consumer, 'consumer.ts'), CONSUMER_TS);
    writeFileSync(join(consumer, `tsconfig.${name}.json`), JSON.stringify({ compilerOptions: { ...compilerOptions, ...options }, files: ['consumer.ts'] }));
    // The consumer has @types/node, as a Node.js project does (it is not installed by the package).
    for (const dep of ['@types/node', 'undici-types']) {
      if (!existsSync(join(consumer, 'node_modules', dep))) cpSync(join(ROOT, 'node_modules', dep), join(consumer, 'node_modules', dep), { recursive: true, dereference: true });
    }
    const r = await run(TSC, ['-p', `tsconfig.${name}.json`, '--pretty', 'false'], { cwd: consumer });
    return r.stdout.split('\n').filter((l) => / error TS\d+:/.test(l));
  };

  it('type-checks with moduleResolution node10 (package.json `types`), as `tsc --init` would set it up', async () => {
    // skipLibCheck, as --init writes it: @clerk/backend's own .d.ts need exports-aware resolution.
    const errors = await tsc('node10', { module: 'commonjs', moduleResolution: 'node10', esModuleInterop: true, skipLibCheck: true });
    expect(errors).toEqual([]);
  }, 60_000);

  it('type-checks with moduleResolution nodenext, every published .d.ts included (no skipLibCheck)', async () => {
    const errors = await tsc('nodenext', { module: 'nodenext', moduleResolution: 'nodenext', skipLibCheck: false });
    // Only @clerk's own declarations fail without skipLibCheck (optional modules they name); none of ours, none the consumer's.
    expect(errors.filter((l) => !l.startsWith('node_modules/@clerk/'))).toEqual([]);
  }, 60_000);
});

describe('on Node 22', () => {
  it('the library opens a mirror file and answers a miss with Clerk’s 404, as the consumer’s own @clerk/backend class', async () => {
    const db = join(work, 'mirror.db');
    writeFileSync(
      join(consumer, 'run.mjs'),
      `import { ConfigError, createMirror, getOrganizationInvitation, loadConfig } from '${pkg.name}';
import { ClerkAPIResponseError, isClerkAPIResponseError } from '@clerk/backend/errors';
const path = process.argv[2];
createMirror({ path }).close(); // a writable open creates and migrates the file
process.env.MIRROR_DB_PATH = path;
const error = await getOrganizationInvitation({ organizationId: 'org_1', invitationId: 'orginv_1' }).then(() => undefined, (e) => e);
let configError;
try { loadConfig({ PORT: 'not a port' }); } catch (e) { configError = e; }
console.log(JSON.stringify({
  node: process.versions.node,
  status: error?.status,
  code: error?.errors?.[0]?.code,
  isClerkAPIResponseError: error ? isClerkAPIResponseError(error) : false,
  instanceOfConsumersClass: error instanceof ClerkAPIResponseError,
  mirrorDbPath: loadConfig({ MIRROR_DB_PATH: path }).mirrorDbPath,
  configError: configError instanceof ConfigError,
}));
`,
    );
    const out = await must(node22, ['run.mjs', db], { cwd: consumer });
    const result = JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(result).toEqual({
      node: expect.stringMatching(/^22\./),
      status: 404,
      code: 'resource_not_found',
      isClerkAPIResponseError: true,
      instanceOfConsumersClass: true,
      mirrorDbPath: db,
      configError: true,
    });
    expect(existsSync(db)).toBe(true);
  }, 60_000);

  it('the installed bin prints the version', async () => {
    const bin = join(consumer, 'node_modules/.bin/clerk-invitation-mirror');
    const r = await run(bin, ['--version'], { cwd: consumer, env: cleanEnv({ PATH: `${dirname(node22)}:${process.env.PATH}` }) });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(new RegExp(`^clerk-invitation-mirror ${pkg.version.replace(/\./g, '\\.')} \\(node 22\\.\\d+\\.\\d+\\)\\n$`));
    expect(r.code).toBe(0);
  }, 60_000);
});
