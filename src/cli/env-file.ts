import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { UsageError } from './command.ts';

/**
 * The environment a command runs with: its own, over the variables of an env file — the one
 * `--dotenv PATH` names (it must exist), else `.env` in the current directory when there
 * is one. Variables already set win, as with Docker Compose and dotenv. Returns the argv
 * without the option.
 */
export function withEnvFile(argv: string[], env: Record<string, string | undefined>, cwd = process.cwd()): { argv: string[]; env: Record<string, string | undefined>; file?: string } {
  const rest: string[] = [];
  let named: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--dotenv') {
      named = argv[++i];
      if (!named) throw new UsageError('--dotenv needs a path');
    } else if (a.startsWith('--dotenv=')) named = a.slice('--dotenv='.length);
    else rest.push(a);
  }
  const file = resolve(cwd, named ?? '.env');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (named === undefined && (err as NodeJS.ErrnoException).code === 'ENOENT') return { argv: rest, env };
    throw new UsageError(`cannot read the env file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const fromFile = parseEnv(text);
  return { argv: rest, env: { ...fromFile, ...definedOnly(env) }, file };
}

function definedOnly(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}
