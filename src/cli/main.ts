import { packageVersion } from '../bapi/client.ts';
import { ConfigError } from '../config.ts';
import { scrub } from '../logger.ts';
import { UsageError } from './command.ts';
import { commands } from './commands.ts';
import { withEnvFile } from './env-file.ts';

const BIN = 'clerk-invitation-mirror';

function overview(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const list = Object.entries(commands)
    .map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
    .join('\n');
  return `Usage: ${BIN} <command> [options]

A local mirror of a Clerk instance's organization invitations.

Commands:
${list}

Every command reads its settings from the environment, over those of \`.env\` in the
current directory when there is one (or of the file \`--dotenv PATH\` names); variables
already set win.

Run \`${BIN} <command> --help\` for a command's options, \`${BIN} --version\` for the version.`;
}

export async function main(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    console.log(overview());
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    console.log(`${BIN} ${packageVersion()} (node ${process.versions.node})`);
    return 0;
  }
  const command = commands[name];
  if (!command) {
    console.error(`${BIN}: unknown command "${name}"; run \`${BIN} --help\` for the list`);
    return 2;
  }
  if (rest.includes('-h') || rest.includes('--help')) {
    console.log(command.help);
    return 0;
  }
  try {
    const withFile = withEnvFile(rest, env);
    return await command.run(withFile.argv, withFile.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`${BIN} ${name}: ${err.message}`);
      return 78; // EX_CONFIG
    }
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`${BIN} ${name}: ${(err as Error).message}; see \`${BIN} ${name} --help\``);
      return 2;
    }
    // Operational failures (Redis missing, a failed migration, a port in use) are one line;
    // LOG_LEVEL=debug or trace adds the stack for bug reports.
    const e = err as Error;
    console.error(`${BIN} ${name}: ${scrub(e.message.split('\n')[0] ?? String(e))}`);
    if (env.LOG_LEVEL === 'debug' || env.LOG_LEVEL === 'trace') console.error(scrub(e.stack ?? ''));
    return 1;
  }
}

const code = await main(process.argv.slice(2), process.env);
process.exitCode = code;
// A handle a library forgot to close must not keep a finished command alive.
setTimeout(() => process.exit(code), 2000).unref();
