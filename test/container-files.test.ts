import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { envSchema, loadConfig } from '../src/config.ts';
import { freePort } from '../src/redis/managed.ts';
import { startRedisServer } from './helpers/redis-server.ts';

// Nobody can run `docker compose up` on the CI machine, so these pin what the files promise,
// and run what can run outside Docker: the healthchecks, and redis-server with compose's arguments.
const ROOT = join(import.meta.dirname, '..');
const read = (f: string) => readFileSync(join(ROOT, f), 'utf8');
const ENV_NAMES = new Set(Object.keys(envSchema.shape));

interface ComposeService {
  image?: string;
  build?: unknown;
  init?: boolean;
  command?: string[];
  environment?: Record<string, string | number>;
  env_file?: unknown;
  volumes?: string[];
  healthcheck?: { test: string[]; start_period?: string };
  depends_on?: Record<string, { condition: string }>;
  stop_grace_period?: string;
}
const compose = parse(read('docker-compose.yml')) as { services: Record<string, ComposeService>; volumes: Record<string, unknown> };
const dockerfile = read('Dockerfile');
const appServices = Object.entries(compose.services).filter(([, s]) => s.build !== undefined);

/** Compose's interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`. */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\{([A-Za-z_]\w*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_]\w*)/g, (whole, name?: string, op?: string, arg?: string, bare?: string) => {
    if (whole === '$$') return '$';
    if (bare) return env[bare] ?? '';
    const v = env[name!];
    const set = op?.startsWith(':') ? v !== undefined && v !== '' : v !== undefined;
    switch (op?.replace(':', '')) {
      case undefined:
        return v ?? '';
      case '-':
        return set ? v! : arg!;
      case '+':
        return set ? arg! : '';
      default:
        if (!set) throw new Error(`compose refuses to start: ${name}: ${arg}`);
        return v!;
    }
  });
}

/** What a container of `service` sees, given `dotenv` as the .env file: env_file's values, overridden by `environment`. */
function containerEnv(service: ComposeService, dotenv: Record<string, string>): Record<string, string> {
  const fromFile = service.env_file === undefined ? {} : dotenv;
  const own = Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(String(v), dotenv)]));
  return { ...fromFile, ...own };
}

/** A compose duration ("20s", "5m", "1m30s") in milliseconds. */
function durationMs(d: string | undefined): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(d ?? '');
  if (!m || !d) throw new Error(`not a duration: ${d}`);
  return ((Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0)) * 60 + Number(m[3] ?? 0)) * 1000;
}

/** Runs `cmd` and resolves with its exit code (asynchronously: the test's own servers must keep answering). */
function exitCode(cmd: string, args: string[], env: Record<string, string | undefined>): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : -1)));
  });
}

/** An HTTP server answering every request with `status`; `port` of a closed one answers nothing. */
async function statusServer(status: number): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer((_req, res) => res.writeHead(status).end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
}

/** Runs a healthcheck's `CMD` array against a server answering `status` (or against a closed port). */
async function probe(cmd: string[], status: number | 'closed'): Promise<number> {
  const [bin, ...args] = cmd;
  if (status === 'closed') return exitCode(bin!, args, { PATH: process.env.PATH, PORT: String(await freePort()) });
  const server = await statusServer(status);
  try {
    return await exitCode(bin!, args, { PATH: process.env.PATH, PORT: String(server.port) });
  } finally {
    await server.close();
  }
}

// A .env with a value for every credential, as a user would write it.
const DOTENV: Record<string, string> = {
  CLERK_SECRET_KEY: 'sk_test_0123456789abcdef',
  CLERK_WEBHOOK_SIGNING_SECRET: `whsec_${Buffer.alloc(24, 7).toString('base64')}`,
  MIRROR_API_KEY: 'k'.repeat(32),
};
// What compose itself decides for the app containers: where Redis and the file are, the listener,
// and the shutdown deadline (it must stay under stop_grace_period).
const COMPOSE_DECIDES = new Set(['REDIS_URL', 'MIRROR_DB_PATH', 'PORT', 'HOST', 'SHUTDOWN_TIMEOUT_MS']);
// What replica-b must not take from .env: the Clerk credentials, and read-through (it needs one).
const REPLICA_BLANKS = new Set([...ENV_NAMES].filter((n) => n.startsWith('CLERK_') && n !== 'CLERK_API_URL').concat('READ_THROUGH'));

describe('docker-compose.yml', () => {
  const { redis, mirror } = compose.services;
  const replicaB = compose.services['replica-b'];

  it('has exactly the redis, mirror and replica-b services, the last two built from the Dockerfile', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['mirror', 'redis', 'replica-b']);
    expect(appServices.map(([name]) => name).sort()).toEqual(['mirror', 'replica-b']);
    for (const [, s] of appServices) {
      expect(s.build).toBe('.');
      expect(s.depends_on).toEqual({ redis: { condition: 'service_healthy' } });
    }
  });

  it('runs an init as PID 1 in every service', () => {
    for (const [name, s] of Object.entries(compose.services)) expect(s.init, name).toBe(true);
  });

  it('hands the optional .env to the app containers, and not to Redis', () => {
    for (const [name, s] of appServices) expect(s.env_file, name).toEqual([{ path: '.env', required: false }]);
    expect(redis!.env_file).toBeUndefined();
    // The file holds secrets: out of git and out of the build context.
    expect(read('.gitignore').split('\n')).toContain('.env');
    expect(dockerignored('.env')).toBe(true);
  });

  it('sets only schema variables in environment, so .env can set every other one', () => {
    // Every variable compose does not decide itself comes from .env, whatever the schema holds.
    const dotenv = Object.fromEntries([...ENV_NAMES].map((n) => [n, `from-dotenv-${n}`]));
    for (const [name, s] of appServices) {
      for (const n of Object.keys(s.environment ?? {})) expect(ENV_NAMES, `${name}: ${n} is not in the config schema`).toContain(n);
      const env = containerEnv(s, dotenv);
      const blanked = name === 'replica-b' ? REPLICA_BLANKS : new Set<string>();
      for (const n of ENV_NAMES) {
        if (COMPOSE_DECIDES.has(n) || blanked.has(n)) continue;
        expect(env[n], `${name}: ${n} cannot be set from .env`).toBe(dotenv[n]);
      }
    }
  });

  it('starts the mirror with a configuration the schema accepts, and refuses to start without its credentials', () => {
    const config = loadConfig(containerEnv(mirror!, DOTENV), { require: ['CLERK_SECRET_KEY', 'CLERK_WEBHOOK_SIGNING_SECRET', 'REDIS_URL'] });
    expect(config.http).toEqual({ port: 8080, host: '0.0.0.0' });
    expect(config.mirrorDbPath).toMatch(/^\/data\//);
    expect(new URL(config.redisUrl!).host).toBe('redis:6379');
    expect(() => containerEnv(mirror!, {})).toThrow(/CLERK_SECRET_KEY/);
  });

  it('runs a second replica on the same Redis, with a file of its own and no Clerk credential even when .env has them', () => {
    const b = replicaB!;
    expect(b.command).toEqual(['start', '--role', 'replica,api']);
    expect(b.environment!.REDIS_URL).toBe(mirror!.environment!.REDIS_URL);
    expect(b.volumes).toEqual(['replica-b-data:/data']);
    expect(compose.volumes).toHaveProperty('replica-b-data');
    expect(b.volumes![0]!.split(':')[0]).not.toBe(mirror!.volumes![0]!.split(':')[0]);
    const env = containerEnv(b, { ...DOTENV, READ_THROUGH: '1' });
    for (const n of REPLICA_BLANKS) if (n !== 'READ_THROUGH') expect(env[n], n).toBe('');
    const config = loadConfig(env, { require: ['REDIS_URL', 'MIRROR_DB_PATH'] });
    expect(config.clerk.secretKey).toBeUndefined();
    expect(config.clerk.webhookSigningSecret).toBeUndefined();
    expect(config.readThrough).toBeUndefined();
    expect(config.mirrorApiKey).toBe(DOTENV.MIRROR_API_KEY);
    expect(() => containerEnv(b, {})).toThrow(/MIRROR_API_KEY/);
  });

  it('keeps the SQLite file on a named volume at MIRROR_DB_PATH and Redis on its own', () => {
    expect(mirror!.volumes).toEqual(['mirror-data:/data']);
    expect(String(mirror!.environment!.MIRROR_DB_PATH)).toMatch(/^\/data\//);
    expect(compose.volumes).toHaveProperty('mirror-data');
    expect(redis!.volumes).toEqual(['redis-data:/data']);
    expect(compose.volumes).toHaveProperty('redis-data');
  });

  it('gives each app service a /readyz healthcheck that waits out a first backfill, and one that really probes', async () => {
    for (const [name, s] of appServices) {
      const hc = s.healthcheck;
      expect(hc, name).toBeDefined();
      expect(hc!.test[0]).toBe('CMD');
      expect(hc!.test.join(' ')).toContain('/readyz');
      expect(durationMs(hc!.start_period), `${name}: start_period`).toBeGreaterThanOrEqual(60_000);
      const cmd = hc!.test.slice(1).map((a) => interpolate(a, {}));
      expect(await probe(cmd, 200), `${name}: healthy on 200`).toBe(0);
      expect(await probe(cmd, 503), `${name}: unhealthy on 503`).not.toBe(0);
      expect(await probe(cmd, 'closed'), `${name}: unhealthy when nothing listens`).not.toBe(0);
    }
  });

  it('lets each app service finish its shutdown before Docker sends SIGKILL', () => {
    // The service's whole-process shutdown deadline, plus margin. compose sets the deadline
    // itself when the schema has it, so a longer one in .env cannot outlast stop_grace_period.
    const defaults = envSchema.parse({}) as Record<string, unknown>;
    for (const [name, s] of appServices) {
      if (ENV_NAMES.has('SHUTDOWN_TIMEOUT_MS')) expect(s.environment, name).toHaveProperty('SHUTDOWN_TIMEOUT_MS');
      const deadline = Number(interpolate(String(s.environment?.SHUTDOWN_TIMEOUT_MS ?? defaults.SHUTDOWN_TIMEOUT_MS ?? 15_000), {}));
      expect(durationMs(s.stop_grace_period), name).toBeGreaterThanOrEqual(deadline + 5000);
    }
  });

  it('runs redis-server itself (exec form, or a shell that execs it) so it gets SIGTERM, saying what it relies on', () => {
    const cmd = redis!.command!;
    // noeviction is also Redis' default: say it anyway, a default is not a promise.
    for (const flag of ['--appendonly yes', '--appendfsync always', '--maxmemory-policy noeviction']) expect(cmd.join(' ')).toContain(flag);
    if (cmd[0] === 'redis-server') return;
    expect(cmd.slice(0, 2)).toEqual(['sh', '-c']);
    expect(cmd[2]).toMatch(/^exec (docker-entrypoint\.sh )?redis-server /);
  });
});

describe('Redis as compose starts it', () => {
  const { redis, mirror } = compose.services;
  const dirs: string[] = [];
  const stops: (() => Promise<void>)[] = [];
  afterAll(async () => {
    await Promise.all(stops.map((s) => s()));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** redis-server with the compose command's arguments (interpolated from `dotenv`), on a free loopback port. */
  async function start(dotenv: Record<string, string>): Promise<number> {
    const [bin, ...args] = redis!.command!.map((a) => interpolate(a, dotenv));
    expect(bin).toBe('redis-server');
    const dir = mkdtempSync(join(tmpdir(), 'cim-compose-redis-'));
    dirs.push(dir);
    const server = await startRedisServer({ dir, args: (port) => [...args, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir], readyTimeoutMs: 10_000 });
    stops.push(() => server.stop());
    return server.port;
  }

  /** Connects with the URL the app containers get, pointed at `port`, and PINGs. */
  async function pingAsTheApp(dotenv: Record<string, string>, port: number): Promise<string> {
    const url = containerEnv(mirror!, { ...DOTENV, ...dotenv }).REDIS_URL!;
    expect(url).toContain('@redis:6379');
    expect(loadConfig({ REDIS_URL: url }).redisUrl).toBe(url);
    const r = new Redis(url.replace('@redis:6379', `@127.0.0.1:${port}`), { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => {});
    try {
      await r.connect();
      return await r.ping();
    } finally {
      r.disconnect();
    }
  }

  /** Runs redis' healthcheck in a shell whose `redis-cli` talks to `port`, with the container's environment. */
  async function healthcheck(env: Record<string, string>, port: number): Promise<number> {
    const [kind, script] = redis!.healthcheck!.test;
    expect(kind).toBe('CMD-SHELL');
    const bin = mkdtempSync(join(tmpdir(), 'cim-redis-cli-'));
    dirs.push(bin);
    const real = ['/usr/bin/redis-cli', '/usr/local/bin/redis-cli', '/opt/homebrew/bin/redis-cli'].find((p) => existsSync(p));
    expect(real, 'redis-cli is installed').toBeDefined();
    writeFileSync(join(bin, 'redis-cli'), `#!/bin/sh\nexec ${real} -p ${port} "$@"\n`);
    chmodSync(join(bin, 'redis-cli'), 0o755);
    return exitCode('/bin/sh', ['-c', interpolate(script!, {})], { PATH: `${bin}:${process.env.PATH}`, ...env });
  }

  async function configOf(port: number, password: string | undefined): Promise<Record<string, string>> {
    const r = new Redis({ host: '127.0.0.1', port, password, lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await r.connect();
      const out: Record<string, string> = {};
      for (const key of ['maxmemory', 'maxmemory-policy', 'appendonly', 'appendfsync', 'requirepass']) {
        const [, value] = (await r.config('GET', key)) as string[];
        out[key] = value!;
      }
      return out;
    } finally {
      r.disconnect();
    }
  }

  it('without REDIS_PASSWORD: no password, AOF fsynced on every write, noeviction, a memory limit; the app and the healthcheck get in', async () => {
    const port = await start({});
    const config = await configOf(port, undefined);
    expect(config).toMatchObject({ 'maxmemory-policy': 'noeviction', appendonly: 'yes', appendfsync: 'always', requirepass: '' });
    expect(Number(config.maxmemory)).toBeGreaterThan(0);
    expect(await pingAsTheApp({}, port)).toBe('PONG');
    expect(await healthcheck(containerEnv(redis!, {}), port)).toBe(0);
  });

  it('with REDIS_PASSWORD and REDIS_MAXMEMORY: Redis requires the password, the app sends it, the healthcheck too', async () => {
    const dotenv = { REDIS_PASSWORD: 'a3f1c9e07b5d42e8a1f0', REDIS_MAXMEMORY: '64mb' };
    const port = await start(dotenv);
    const config = await configOf(port, dotenv.REDIS_PASSWORD);
    expect(config).toMatchObject({ maxmemory: String(64 * 1024 * 1024), 'maxmemory-policy': 'noeviction', appendfsync: 'always', requirepass: dotenv.REDIS_PASSWORD });
    expect(await pingAsTheApp(dotenv, port)).toBe('PONG');
    await expect(pingAsTheApp({}, port)).rejects.toThrow();
    expect(await healthcheck(containerEnv(redis!, dotenv), port)).toBe(0);
    // A check that only ran redis-cli would pass on NOAUTH: without the password it must fail.
    expect(await healthcheck(containerEnv(redis!, {}), port)).not.toBe(0);
  });
});

describe('pinned images', () => {
  const fromTags = [...dockerfile.matchAll(/^FROM\s+(?:--platform=\S+\s+)?(\S+)/gm)].map((m) => m[1]!);
  const images = Object.values(compose.services).flatMap((s) => (s.image ? [s.image] : []));
  const PINNED = /^[\w./-]+:\d+\.\d+\.\d+(?:-[\w.-]+)?(?:@sha256:[0-9a-f]{64})?$/;

  it('uses a full x.y.z tag in every FROM and every image:', () => {
    expect(fromTags.length).toBeGreaterThan(0);
    expect(images.length).toBeGreaterThan(0);
    for (const ref of [...fromTags, ...images]) expect(ref).toMatch(PINNED);
    // A BuildKit frontend is an image too.
    const syntax = /^#\s*syntax=(\S+)/m.exec(dockerfile);
    if (syntax) expect(syntax[1]).toMatch(PINNED);
    // The README names the tags in use: an upgrade edits it too.
    for (const ref of new Set([...fromTags, ...images])) expect(read('README.md'), ref).toContain(`\`${ref}\``);
  });

  it('runs Redis 7.2 or later (WAITAOF)', () => {
    const [major, minor] = /^redis:(\d+)\.(\d+)\./.exec(compose.services.redis!.image!)!.slice(1).map(Number);
    expect(major! * 100 + minor!).toBeGreaterThanOrEqual(702);
  });
});

describe('Dockerfile', () => {
  const stages = dockerfile.split(/^FROM /m).slice(1);
  const build = stages[0]!;
  const runtime = stages.at(-1)!;

  it('runs Node 22 LTS on one base image in every stage, so native modules built in one run in the other', () => {
    expect(stages.length).toBe(2);
    const bases = stages.map((s) => s.split(/\s/)[0]);
    for (const base of bases) expect(base).toMatch(/^node:22\.\d+\.\d+-bookworm-slim$/);
    expect(new Set(bases).size).toBe(1);
  });

  it('builds native modules and the code once, in the build stage, then drops the dev dependencies', () => {
    expect(build).toMatch(/apt-get install[^\n]*python3[^\n]*make[^\n]*g\+\+/);
    const ci = build.indexOf('npm ci');
    const compile = build.indexOf('npm run build');
    const prune = build.search(/npm prune --omit=dev/);
    expect(ci).toBeGreaterThan(-1);
    expect(compile).toBeGreaterThan(ci);
    expect(prune).toBeGreaterThan(compile);
  });

  it('installs nothing in the runtime stage: no compiler, no npm install, the pruned node_modules of the build stage', () => {
    expect(runtime).not.toMatch(/apt-get|apk add/);
    expect(runtime).not.toMatch(/(^|[^\w-])(python3?|make|g\+\+|gcc|build-essential)(?![\w+-])/m);
    expect(runtime).not.toMatch(/npm (ci|install|i|rebuild|prune)\b/);
    expect(runtime).toMatch(/^COPY --from=build \/app\/node_modules \.\/node_modules$/m);
    expect(runtime).toMatch(/^COPY --from=build \/app\/package\.json /m);
  });

  it('copies what the runtime needs from the build stage: dist (with the Lua scripts the build copies into it), bin and the migrations', () => {
    for (const path of ['dist', 'bin', 'migrations']) expect(runtime).toMatch(new RegExp(`^COPY --from=build /app/${path} \\./${path}$`, 'm'));
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(pkg.scripts.build).toContain("cpSync('src/state/scripts', 'dist/state/scripts'");
  });

  it('runs as a non-root user', () => {
    const users = [...runtime.matchAll(/^USER (\S+)/gm)].map((m) => m[1]);
    expect(users.at(-1)).toBeDefined();
    expect(users.at(-1)).not.toMatch(/^(root|0)$/);
  });

  it('keeps /data as a volume owned by that user and sets only schema variables', () => {
    expect(runtime).toMatch(/VOLUME \["\/data"\]/);
    expect(runtime).toMatch(/chown node:node \/data/);
    const envBlock = /^ENV ([\s\S]*?)(?=^\S)/m.exec(runtime)![1]!;
    const names = [...envBlock.matchAll(/([A-Z_]+)=/g)].map((m) => m[1]!).filter((n) => n !== 'NODE_ENV');
    expect(names.length).toBeGreaterThan(0);
    for (const n of names) expect(ENV_NAMES).toContain(n);
  });

  it('starts the binary in exec form so SIGTERM reaches node, and checks /readyz with a probe that works', async () => {
    expect(runtime).toMatch(/^ENTRYPOINT \["node", "bin\/clerk-invitation-mirror\.js"\]$/m);
    expect(runtime).toMatch(/^CMD \["start"\]$/m);
    const cmd = JSON.parse(/^HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])$/m.exec(runtime)![1]!) as string[];
    expect(cmd.join(' ')).toContain('/readyz');
    expect(await probe(cmd, 200)).toBe(0);
    expect(await probe(cmd, 503)).not.toBe(0);
  });
});

/** Whether .dockerignore keeps `path` (relative to the build context) out of the context. */
function dockerignored(path: string): boolean {
  const patterns = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const parts = path.split('/');
  let ignored = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const re = globToRegExp((negate ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, ''));
    // A pattern that matches a directory leaves out everything under it.
    if (parts.some((_, i) => re.test(parts.slice(0, i + 1).join('/')))) ignored = !negate;
  }
  return ignored;
}

function globToRegExp(glob: string): RegExp {
  let s = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      i++;
      if (glob[i + 1] === '/') {
        i++;
        s += '(?:.*/)?';
      } else s += '.*';
    } else if (c === '*') s += '[^/]*';
    else if (c === '?') s += '[^/]';
    else s += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${s}$`);
}

describe('.dockerignore', () => {
  it('keeps dependencies, build output, git, secrets and local databases out of the build context', () => {
    for (const path of ['node_modules/ioredis/package.json', 'dist/index.js', '.git/HEAD', '.env', 'data/mirror.db', 'mirror.db-wal', 'coverage/index.html', 'bench/results/x.json']) {
      expect(dockerignored(path), path).toBe(true);
    }
  });

  it('keeps everything the build stage copies', () => {
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    expect(sources).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'src', 'migrations', 'bin']));
    for (const source of sources) {
      expect(existsSync(join(ROOT, source)), source).toBe(true);
      expect(dockerignored(source), source).toBe(false);
    }
    for (const path of ['src/cli/main.ts', 'src/state/scripts', 'migrations/0000_init.sql', 'bin/clerk-invitation-mirror.js']) expect(dockerignored(path), path).toBe(false);
  });
});
