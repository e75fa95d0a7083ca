import { parseArgs } from 'node:util';
import { ConfigError, DEFAULT_SHUTDOWN_TIMEOUT_MS, loadConfig, type EnvName } from '../config.ts';
import { takeOverSignals } from '../lifecycle/signals.ts';
import { createLogger, type Logger } from '../logger.ts';
import { ROLES, startService, type Role } from '../service.ts';
import { UsageError, type Command } from './command.ts';

const NEEDS: Record<Role, EnvName[]> = {
  receiver: ['CLERK_WEBHOOK_SIGNING_SECRET'],
  worker: ['CLERK_SECRET_KEY'],
  replica: [],
  api: [],
};

export const startCommand: Command = {
  summary: 'run the receiver, worker, replica and read API (npm start)',
  help: `Usage: clerk-invitation-mirror start [--role receiver|worker|replica|api]...

Runs the mirror until SIGTERM or SIGINT. By default one process runs every role:
  receiver  POST /webhooks/clerk: verifies Svix signatures, queues one job per invitation
            (and per organization, role or user event that changes invitations)
  worker    fetches each queued invitation from Clerk's Backend API once (a bulk invite
            through its organization's list pages) and publishes it into the shared state
            in Redis; re-fetches invitations as they expire; runs backfill and
            reconciliation jobs
  replica   keeps MIRROR_DB_PATH equal to the shared state (never calls Clerk)
  api       the read API (GET /v1/organizations/:org/invitations[/:id]) over that file;
            with READ_THROUGH=1 it asks Clerk for an invitation the mirror never saw
Every role serves GET /healthz, GET /readyz and GET /metrics on PORT; with a read key
(MIRROR_API_KEY), bull-board at /admin/queues, read-only unless MIRROR_ADMIN_KEY is set.

Give --role once or more (or comma-separated) to run only some roles: receivers behind a
load balancer, workers anywhere (they share the queue and Clerk's rate limit), and one
replica (with api, if other processes read over HTTP) on every host that wants local
lookups. Adding a replica costs no Clerk request.

Needs CLERK_WEBHOOK_SIGNING_SECRET (receiver), CLERK_SECRET_KEY (worker, and api with
READ_THROUGH=1) and MIRROR_API_KEY or CLERK_SECRET_KEY (api); a replica needs only REDIS_URL and
MIRROR_DB_PATH. See the README's configuration table for every variable. With REDIS_URL
unset, a private redis-server is started next to MIRROR_DB_PATH and stopped on exit.

On the first SIGTERM/SIGINT (also during start-up) it stops accepting webhooks, lets active
jobs finish, closes Redis and SQLite, stops its private redis-server last and exits 0, all
within SHUTDOWN_TIMEOUT_MS (default 15 s; whatever still hangs then is abandoned and it exits
1); a second signal exits at once. If Redis does not answer within REDIS_CONNECT_TIMEOUT_MS
at start, it exits 1 with one line (a replica or api role alone starts without Redis and
serves its file).

No Clerk account at hand? \`npm run demo\` runs everything against a local simulator.

Options:
  --role ROLE  receiver, worker, replica or api (repeatable; default all four)
  -h, --help   show this help`,
  async run(argv, env) {
    // From the first line: as PID 1 (a container without init) a signal nobody handles is
    // ignored, and one that comes while we start must stop the start-up, not wait for it.
    const stop = new ShutdownRequest();
    const release = takeOverSignals((signal) => stop.request(signal));
    try {
      return await runService(argv, env, stop);
    } finally {
      release();
    }
  },
};

/** The first signal: when it came, and the deadline it set; a second one exits at once. */
class ShutdownRequest {
  readonly abort = new AbortController();
  signal: NodeJS.Signals | undefined;
  deadlineAt = 0;
  log: Logger | undefined;
  timeoutMs = DEFAULT_SHUTDOWN_TIMEOUT_MS;
  private listener: (() => void) | undefined;

  request(signal: NodeJS.Signals): void {
    if (this.signal) {
      this.log?.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    this.signal = signal;
    this.deadlineAt = Date.now() + this.timeoutMs;
    // Whatever still hangs then, the process ends: unref'd, so it never holds up a clean exit.
    setTimeout(() => {
      this.log?.error({ timeoutMs: this.timeoutMs }, 'shutdown deadline passed: exiting with work left undone');
      process.exit(1);
    }, this.timeoutMs).unref();
    this.log?.info({ signal }, 'shutting down');
    this.abort.abort(new Error(`${signal} during start-up`));
    this.listener?.();
  }

  /** Calls `fn` on the first signal, now if it already came. */
  onRequest(fn: () => void): void {
    this.listener = fn;
    if (this.signal) fn();
  }
}

// The closers' deadline comes a little before the process's own, so "stopped" is logged.
const EXIT_MARGIN_MS = 250;

async function runService(argv: string[], env: Record<string, string | undefined>, stop: ShutdownRequest): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { role: { type: 'string', multiple: true } }, strict: true });
  const roles = parseRoles(values.role);
  // Read-through calls Clerk from the read API.
  const readThrough = roles.includes('api') && env.READ_THROUGH === '1' ? (['CLERK_SECRET_KEY'] as EnvName[]) : [];
  const require = [...new Set([...roles.flatMap((r) => NEEDS[r]), ...readThrough])];
  let config;
  try {
    config = loadConfig(env, { require });
  } catch (err) {
    if (err instanceof ConfigError && [err.variable, ...err.others.map((o) => o.variable)].some((v) => v.startsWith('CLERK_'))) {
      throw err.withHint('to try the mirror without a Clerk account, run `npm run demo`');
    }
    throw err;
  }
  const log = createLogger({ level: config.logLevel, format: config.logFormat, color: process.stdout.isTTY === true && env.NO_COLOR === undefined });
  stop.log = log;
  stop.timeoutMs = config.shutdownTimeoutMs;
  if (stop.signal) return 0;
  let service;
  try {
    service = await startService({ config, log, roles, signal: stop.abort.signal });
  } catch (err) {
    // Everything it opened is closed: a stop asked for during start-up is a clean exit.
    if (stop.signal) {
      log.info('stopped before start-up finished');
      return 0;
    }
    throw err;
  }
  const started = service;
  return new Promise<number>((resolve) => {
    stop.onRequest(() => {
      started.stop(stop.deadlineAt - EXIT_MARGIN_MS).then(
        () => {
          log.info('stopped');
          resolve(0);
        },
        (err: unknown) => {
          log.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    });
  });
}

function parseRoles(values: string[] | undefined): Role[] {
  if (!values?.length) return [...ROLES];
  const roles = values.flatMap((v) => v.split(',')).map((v) => v.trim());
  for (const r of roles) {
    if (!(ROLES as readonly string[]).includes(r)) throw new UsageError(`unknown role "${r}" (expected ${ROLES.join(', ')})`);
  }
  return [...new Set(roles)] as Role[];
}
