import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { envSchema, loadConfig } from '../src/config.ts';

// Nobody can run `docker compose up` on the CI machine, so these pin what the files promise.
const ROOT = join(import.meta.dirname, '..');
const read = (f: string) => readFileSync(join(ROOT, f), 'utf8');
const ENV_NAMES = new Set(Object.keys(envSchema.shape));

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string | number>;
  volumes?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
}
const compose = parse(read('docker-compose.yml')) as { services: Record<string, ComposeService>; volumes: Record<string, unknown> };
const dockerfile = read('Dockerfile');

describe('docker-compose.yml', () => {
  const { redis, mirror } = compose.services;

  it('has exactly the redis, mirror and replica-b services', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['mirror', 'redis', 'replica-b']);
  });

  it('runs a second replica on the same Redis, with a file of its own and no Clerk credential', () => {
    const b = compose.services['replica-b']!;
    expect(b.build).toBe('.');
    expect(b.command).toEqual(['start', '--role', 'replica,api']);
    expect(b.depends_on).toEqual({ redis: { condition: 'service_healthy' } });
    const env = b.environment!;
    for (const name of Object.keys(env)) expect(ENV_NAMES, `${name} is not in the config schema`).toContain(name);
    expect(env.REDIS_URL).toBe(mirror!.environment!.REDIS_URL);
    expect(Object.keys(env).filter((n) => n.startsWith('CLERK_'))).toEqual([]);
    expect(b.volumes).toEqual(['replica-b-data:/data']);
    expect(compose.volumes).toHaveProperty('replica-b-data');
    expect(b.volumes![0]!.split(':')[0]).not.toBe(mirror!.volumes![0]!.split(':')[0]);
    expect(env).toHaveProperty('MIRROR_API_KEY');
  });

  it('runs Redis with AOF on, noeviction, a healthcheck and a named volume', () => {
    expect(redis!.image).toMatch(/^redis:7/);
    const cmd = redis!.command!.join(' ');
    expect(cmd).toMatch(/--appendonly yes/);
    expect(cmd).toMatch(/--maxmemory-policy noeviction/);
    expect(redis!.healthcheck!.test.join(' ')).toMatch(/redis-cli ping/);
    expect(redis!.volumes).toEqual(['redis-data:/data']);
    expect(compose.volumes).toHaveProperty('redis-data');
  });

  it('builds the mirror from the Dockerfile and starts it once Redis is healthy', () => {
    expect(mirror!.build).toBe('.');
    expect(mirror!.depends_on).toEqual({ redis: { condition: 'service_healthy' } });
  });

  it('passes only variables the config schema reads, and every required one', () => {
    const env = mirror!.environment!;
    for (const name of Object.keys(env)) expect(ENV_NAMES, `${name} is not in the config schema`).toContain(name);
    for (const required of ['CLERK_SECRET_KEY', 'CLERK_WEBHOOK_SIGNING_SECRET', 'REDIS_URL', 'MIRROR_DB_PATH']) expect(env).toHaveProperty(required);
    expect(env.REDIS_URL).toBe('redis://redis:6379');
  });

  it('keeps the SQLite file on a named volume at MIRROR_DB_PATH', () => {
    expect(mirror!.volumes).toEqual(['mirror-data:/data']);
    expect(String(mirror!.environment!.MIRROR_DB_PATH)).toMatch(/^\/data\//);
    expect(compose.volumes).toHaveProperty('mirror-data');
  });

  it('has literal values the config schema accepts', () => {
    // ${...} substitutions come from the user's .env; the literal ones must parse as they are.
    const env = mirror!.environment!;
    const literal = Object.fromEntries(Object.entries(env).filter(([, v]) => !String(v).includes('${')).map(([k, v]) => [k, String(v)]));
    expect(() => loadConfig(literal)).not.toThrow();
    expect(loadConfig(literal).http).toEqual({ port: 8080, host: '0.0.0.0' });
  });
});

describe('Dockerfile', () => {
  const stages = dockerfile.split(/^FROM /m).slice(1);
  const runtime = stages.at(-1)!;

  it('runs on Node 22 LTS in every stage', () => {
    expect(stages.length).toBeGreaterThan(0);
    for (const stage of stages) expect(stage).toMatch(/^node:22[-\w.]*/);
  });

  it('installs production dependencies only in the runtime image, with npm ci', () => {
    expect(runtime).toMatch(/npm ci --omit=dev/);
    expect(runtime).not.toMatch(/npm install/);
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

  it('starts the binary in exec form so SIGTERM reaches node, and checks /readyz', () => {
    expect(runtime).toMatch(/^ENTRYPOINT \["node", "bin\/clerk-invitation-mirror\.js"\]$/m);
    expect(runtime).toMatch(/^CMD \["start"\]$/m);
    expect(runtime).toMatch(/HEALTHCHECK[\s\S]*\/readyz/);
  });

  it('copies what the runtime needs: dist (with the Lua scripts the build copies into it), bin and the migrations', () => {
    for (const path of ['/app/dist ./dist', 'bin ./bin', 'migrations ./migrations']) expect(runtime).toContain(path);
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(pkg.scripts.build).toContain("cpSync('src/state/scripts', 'dist/state/scripts'");
    expect(stages[0]).toMatch(/npm run build/);
  });
});
