import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { tempDir } from './fixtures.ts';
import { SECRET_KEY, SIGNING_SECRET } from './pipeline.ts';
import { redisSpace, type RedisSpace } from './state.ts';

export const ROOT = join(import.meta.dirname, '../..');
export const BIN = join(ROOT, 'bin/clerk-invitation-mirror.js');

export interface CliProcess {
  child: ChildProcess;
  /** stdout and stderr so far. */
  output(): string;
  /** Resolves with the first match of `re` in the output; rejects if the process exits first or on timeout. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  exited: Promise<number | string>;
}

const live = new Set<ChildProcess>();

/** SIGKILLs every child spawned here that is still running (call from afterAll). */
export function killAllChildren(): void {
  for (const c of live) c.kill('SIGKILL');
}

/** Runs the `clerk-invitation-mirror` binary as a real child process with exactly `env` (plus PATH unless given). */
export function spawnCli(args: string[], env: Record<string, string | undefined>, cwd = ROOT, { wrapper = [] }: { wrapper?: string[] } = {}): CliProcess {
  // `wrapper`: a command that runs node, e.g. ['unshare', '--pid', '--fork'] for PID 1.
  const [command, ...rest] = [...wrapper, process.execPath, BIN, ...args] as [string, ...string[]];
  const child = spawn(command, rest, { cwd, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.once('exit', () => live.delete(child));
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    out += chunk.toString();
    for (const l of listeners) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  return {
    child,
    output: () => out,
    exited,
    waitFor(re, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(out);
          if (m) {
            done();
            resolve(m);
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no ${re} within ${timeoutMs} ms; output:\n${out.slice(-2000)}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        void exited.then(() => {
          if (!listeners.has(check)) return;
          check();
          if (listeners.has(check)) {
            done();
            reject(new Error(`exited before ${re}; output:\n${out.slice(-2000)}`));
          }
        });
        check();
      });
    },
  };
}

/** Runs the binary to completion. */
export async function runCli(args: string[], env: Record<string, string | undefined>, cwd = ROOT): Promise<{ code: number | string; output: string }> {
  const p = spawnCli(args, env, cwd);
  const code = await p.exited;
  return { code, output: p.output() };
}

/**
 * What a file that runs the binary needs: a scratch directory, the BAPI simulator and a Redis
 * space of its own. After the file, every child still running is killed and all of it released.
 */
export async function binaryRig(name: string): Promise<{ tmp: ReturnType<typeof tempDir>; redis: RedisSpace; sim: Simulator }> {
  const tmp = tempDir(`cim-${name}-`);
  const redis = redisSpace(name);
  const sim = await startSimulator({ secretKey: SECRET_KEY, signingSecret: SIGNING_SECRET, rateLimit: 0 });
  afterAll(async () => {
    killAllChildren();
    await sim.close();
    await redis.clear();
    tmp.cleanup();
  });
  return { tmp, redis, sim };
}
