import { readFileSync } from 'node:fs';
import type { Redis } from '../redis/connection.ts';

const DIR = new URL('./scripts/', import.meta.url);

/** Number of KEYS each script takes (undefined: given with each call); the file is `scripts/<name>.lua`. */
const SCRIPTS: Record<string, number | undefined> = { publish: 6, held: undefined, ensure: 1, records: 2, due: 1, find: 1 };
type ScriptName = 'publish' | 'held' | 'ensure' | 'records' | 'due' | 'find';

const INCLUDE = /^-- @include (\S+)$/m;
const sources = new Map<string, string>();

/** `scripts/<name>.lua`, read once per process; `-- @include file` lines are replaced by that file. */
function source(name: string): string {
  let text = sources.get(name);
  if (text === undefined) {
    text = readFileSync(new URL(`${name}.lua`, DIR), 'utf8');
    for (let m = INCLUDE.exec(text); m; m = INCLUDE.exec(text)) {
      text = text.replace(m[0], readFileSync(new URL(m[1]!, DIR), 'utf8'));
    }
    sources.set(name, text);
  }
  return text;
}

type Arg = string | number;

/** The state's scripts as commands of one connection; ioredis sends EVALSHA and falls back to EVAL once per connection. */
export interface StateScripts {
  publish(keys: [string, string, string, string, string, string], args: Arg[]): Promise<unknown>;
  /** Four answers per id: stored updated_at, tombstone flag, announced version (null where none), recent count. */
  held(keys: string[], args: string[]): Promise<(string | number | null)[]>;
  ensure(keys: [string], args: [string]): Promise<string[]>;
  records(keys: [string, string], args: Arg[]): Promise<[string, string | null]>;
  /** Members taken from the expiries set: due at or before args[0] (ms), at most args[1]. */
  due(keys: [string], args: [number, number]): Promise<string[]>;
  /** One HSCAN page of live states whose value contains args[2]: next cursor, then id/value pairs. */
  find(keys: [string], args: [string, number, string]): Promise<[string, string[]]>;
}

const COMMAND = (name: ScriptName) => `cimState${name[0]!.toUpperCase()}${name.slice(1)}`;

/** Defines the scripts on `redis` (once per connection) and returns them. */
export function stateScripts(redis: Redis): StateScripts {
  const r = redis as unknown as Record<string, (...a: Arg[]) => Promise<unknown>>;
  if (!r[COMMAND('publish')]) {
    for (const name of Object.keys(SCRIPTS) as ScriptName[]) {
      const numberOfKeys = SCRIPTS[name];
      redis.defineCommand(COMMAND(name), numberOfKeys === undefined ? { lua: source(name) } : { numberOfKeys, lua: source(name) });
    }
  }
  const call = (name: ScriptName) => (keys: string[], args: Arg[]) =>
    SCRIPTS[name] === undefined ? r[COMMAND(name)]!.call(redis, keys.length, ...keys, ...args) : r[COMMAND(name)]!.call(redis, ...keys, ...args);
  return {
    publish: call('publish'),
    held: call('held') as StateScripts['held'],
    ensure: call('ensure') as StateScripts['ensure'],
    records: call('records') as StateScripts['records'],
    due: call('due') as StateScripts['due'],
    find: call('find') as StateScripts['find'],
  };
}

/** Runs one script on a connection: its keys, then its arguments. */
export type ScriptCommand = (redis: Redis, keys: string[], args: Arg[]) => Promise<unknown>;

/**
 * `scripts/<name>.lua` as a command of each connection it runs on, defined on first use
 * (ioredis sends EVALSHA, and EVAL once after a NOSCRIPT): for the scripts of the keys other
 * modules own in the shared Redis (announced versions, the BAPI budget, maintenance locks).
 */
export function scriptCommand(name: string): ScriptCommand {
  const command = `cim_${name.replace(/\W/g, '_')}`;
  return (redis, keys, args) => {
    const r = redis as unknown as Record<string, ((...a: Arg[]) => Promise<unknown>) | undefined>;
    if (!r[command]) redis.defineCommand(command, { lua: source(name) });
    return r[command]!.call(redis, keys.length, ...keys, ...args);
  };
}
