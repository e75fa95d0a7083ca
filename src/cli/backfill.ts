import { runOutput } from './terminal.ts';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.ts';
import { formatBackfillSummary, runBackfill } from '../maintenance/backfill.ts';
import { interruptSignal, withMaintenanceContext } from '../maintenance/context.ts';
import { withRunLock } from '../maintenance/run-lock.ts';
import { UsageError, type Command } from './command.ts';

export const backfillCommand: Command = {
  summary: "copy every invitation from Clerk's lists into the shared state, and so every replica (resumable)",
  help: `Usage: clerk-invitation-mirror backfill [--restart] [--concurrency N] [--page-size N] [--json]

Pages through GET /v1/organization_invitations (500 per page; organization by
organization when that endpoint answers 404) and publishes every invitation into the
shared state in Redis through the same rule as the worker (a newer updated_at wins), from
where every replica applies it. One atomic publish per page; the cursor is saved with it,
so after Ctrl-C or a crash the next run resumes where it stopped. A completed run marks
the shared state filled (replicas report ready only then). The service queues a backfill
by itself whenever it finds the state not filled. BAPI calls share the worker's rate limit (BAPI_RATE_LIMIT per
BAPI_RATE_WINDOW_MS, across every process using this Redis), wait out 429s and retry
transient failures.

On a terminal (stderr), shows a progress bar that names its phase (listing invitations,
listing organizations), redraws every half second with the elapsed time, and says what it
waits for (Clerk's rate limit, the shared budget); log lines (warnings and up, unless
LOG_LEVEL is set) appear above it as \`HH:MM:SS LEVEL msg key=value\`. Otherwise: JSON log
lines, one progress line every 5 s. LOG_FORMAT=json|pretty|auto (default auto: pretty on a
terminal) chooses the log format. Then a summary on stdout.
Exit codes: 0 done, 1 stopped on an error (cursor kept), 130 interrupted (cursor kept).

Needs CLERK_SECRET_KEY; uses CLERK_API_URL, REDIS_URL (unset: the private redis-server
of the service at MIRROR_DB_PATH) and REDIS_KEY_PREFIX.

Options:
  --restart        ignore a saved cursor and start from the first page
  --concurrency N  requests in flight at once (default 4)
  --page-size N    invitations per request, 1 to 500 (default 500)
  --json           print the summary as JSON
  -h, --help       show this help`,
  async run(argv, env) {
    const { values } = parseArgs({
      args: argv,
      options: {
        restart: { type: 'boolean', default: false },
        concurrency: { type: 'string', default: '4' },
        'page-size': { type: 'string', default: '500' },
        json: { type: 'boolean', default: false },
      },
      strict: true,
    });
    const concurrency = Number(values.concurrency);
    const pageSize = Number(values['page-size']);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new UsageError('--concurrency must be a whole number from 1 to 64');
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 500) throw new UsageError('--page-size must be a whole number from 1 to 500');
    const config = loadConfig(env, { require: ['CLERK_SECRET_KEY'] });
    const { log, progress, say } = runOutput('backfill', config, env);
    const interrupt = interruptSignal(() => say('interrupted: finishing the pages in flight and saving the cursor (Ctrl-C again to quit now)'));
    try {
      const summary = await withMaintenanceContext(config, (ctx) =>
        withRunLock(ctx.redis, ctx.keys, 'backfill', () =>
          runBackfill({ state: ctx.state, publisher: ctx.publisher, bapi: ctx.bapi, limiter: ctx.limiter, log, signal: interrupt.signal, pageSize, concurrency, restart: values.restart, progress }),
        ),
      );
      console.log(values.json ? JSON.stringify(summary) : formatBackfillSummary(summary));
      return summary.status === 'completed' ? 0 : summary.status === 'interrupted' ? 130 : 1;
    } finally {
      progress.finish();
      interrupt.dispose();
    }
  },
};
