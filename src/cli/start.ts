import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type EnvName } from '../config.ts';
import { createLogger } from '../logger.ts';
import { ROLES, startService, type Role } from '../service.ts';
import { UsageError, type Command } from './command.ts';

const NEEDS: Record<Role, EnvName[]> = {
  receiver: ['CLERK_WEBHOOK_SIGNING_SECRET'],
  worker: ['CLERK_SECRET_KEY'],
  api: [],
};

export const startCommand: Command = {
  summary: 'run the webhook receiver, the sync worker and the read API (npm start)',
  help: `Usage: clerk-invitation-mirror start [--role receiver|worker|api]...

Runs the mirror until SIGTERM or SIGINT. By default one process runs every part:
  receiver  POST /webhooks/clerk: verifies Svix signatures, queues one job per invitation
  worker    fetches each queued invitation from Clerk's Backend API into the SQLite mirror
  api       the read API (GET /v1/organizations/:org/invitations[/:id]) and /metrics
Every role serves GET /healthz and GET /readyz on PORT.

Give --role once or more (or comma-separated) to run only some parts, e.g. receivers on
many hosts and one worker per host that needs local lookups. Applies pending migrations
first (worker); a failed migration stops start-up.

Needs CLERK_WEBHOOK_SIGNING_SECRET (receiver) and CLERK_SECRET_KEY (worker); see the
README's configuration table for every variable. With REDIS_URL unset, a private
redis-server is started next to the mirror database and stopped on exit.

On the first SIGTERM/SIGINT it stops accepting webhooks, lets active jobs finish (10 s at
most), closes Redis and SQLite and exits 0; a second signal exits at once.

No Clerk account at hand? \`npm run demo\` runs everything against a local simulator.

Options:
  --role ROLE  receiver, worker or api (repeatable; default all three)
  -h, --help   show this help`,
  async run(argv, env) {
    const { values } = parseArgs({ args: argv, options: { role: { type: 'string', multiple: true } }, strict: true });
    const roles = parseRoles(values.role);
    const require = [...new Set(roles.flatMap((r) => NEEDS[r]))];
    let config;
    try {
      config = loadConfig(env, { require });
    } catch (err) {
      if (err instanceof ConfigError && err.variable.startsWith('CLERK_')) {
        throw new ConfigError(err.variable, `${err.expected}; to try the mirror without a Clerk account, run \`npm run demo\``);
      }
      throw err;
    }
    const log = createLogger({ level: config.logLevel });
    const service = await startService({ config, log, roles });

    return new Promise<number>((resolve) => {
      let stopping = false;
      const onSignal = (signal: NodeJS.Signals) => {
        if (stopping) {
          log.warn({ signal }, 'second signal: exiting now');
          process.exit(1);
        }
        stopping = true;
        log.info({ signal }, 'shutting down');
        service.stop().then(
          () => {
            log.info('stopped');
            resolve(0);
          },
          (err: unknown) => {
            log.error({ err }, 'shutdown failed');
            resolve(1);
          },
        );
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
  },
};

function parseRoles(values: string[] | undefined): Role[] {
  if (!values?.length) return [...ROLES];
  const roles = values.flatMap((v) => v.split(',')).map((v) => v.trim());
  for (const r of roles) {
    if (!(ROLES as readonly string[]).includes(r)) throw new UsageError(`unknown role "${r}" (expected ${ROLES.join(', ')})`);
  }
  return [...new Set(roles)] as Role[];
}
