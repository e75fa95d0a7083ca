import { runOutput } from './terminal.ts';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.ts';
import { interruptSignal, withMaintenanceContext } from '../maintenance/context.ts';
import { formatReconcileReport, runReconcile } from '../maintenance/reconcile.ts';
import { withRunLock } from '../maintenance/run-lock.ts';
import { UsageError, type Command } from './command.ts';

export const reconcileCommand: Command = {
  summary: 'compare the shared state with Clerk and repair the drift on every replica (--dry-run only reports)',
  help: `Usage: clerk-invitation-mirror reconcile [--dry-run] [--targeted] [--max-age MS] [--concurrency N] [--json]

Makes the shared state in Redis match Clerk (every replica then applies the repairs),
and reports the drift it found per kind:
  missing   in Clerk, not in the shared state            -> inserted
  outdated  the shared state holds an older state        -> updated
  content   same updated_at, other content (Clerk changed a derived field, such as a
            renamed role's role_name, without moving updated_at) -> updated
  expired   pending in the shared state, expired in Clerk (Clerk sends no expiry event)
  gone      in the shared state, 404 in Clerk            -> tombstoned
It pages through BAPI's lists (as \`backfill\` does), then re-fetches one by one every
invitation the lists did not show, pending ones past expires_at and ones Clerk has not
confirmed for longer than --max-age. The service runs the same job every
RECONCILE_INTERVAL_MS; a successful run is recorded for /metrics.

Needs CLERK_SECRET_KEY; uses CLERK_API_URL, REDIS_URL (unset: the private redis-server
of the service at MIRROR_DB_PATH) and REDIS_KEY_PREFIX. BAPI calls
share the worker's rate limit. Exit codes: 0 done, 1 failed, 130 interrupted.

On a terminal (stderr), a progress bar names the phase (listing invitations, listing
organizations, reading the shared state, checking one by one N/M), redraws every half
second and says what it waits for; log lines (warnings and up, unless LOG_LEVEL is set)
appear above it as \`HH:MM:SS LEVEL msg key=value\`. Otherwise JSON log lines, one progress
line every 5 s. LOG_FORMAT=json|pretty|auto (default auto: pretty on a terminal).

Options:
  --dry-run        report only; nothing is written
  --targeted       skip the lists: only re-fetch pending rows past expires_at and old rows
  --max-age MS     re-fetch rows unconfirmed for this long (default RECONCILE_MAX_AGE_MS)
  --concurrency N  requests in flight at once (default 4)
  --json           print the report as JSON
  -h, --help       show this help`,
  async run(argv, env) {
    const { values } = parseArgs({
      args: argv,
      options: {
        'dry-run': { type: 'boolean', default: false },
        targeted: { type: 'boolean', default: false },
        'max-age': { type: 'string' },
        concurrency: { type: 'string', default: '4' },
        json: { type: 'boolean', default: false },
      },
      strict: true,
    });
    const concurrency = Number(values.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new UsageError('--concurrency must be a whole number from 1 to 64');
    const config = loadConfig(env, { require: ['CLERK_SECRET_KEY'] });
    const maxAgeMs = values['max-age'] === undefined ? config.reconcile.maxAgeMs : Number(values['max-age']);
    if (!Number.isInteger(maxAgeMs) || maxAgeMs < 0) throw new UsageError('--max-age must be a whole number of milliseconds');
    const { log, progress, say } = runOutput('reconcile', config, env);
    const interrupt = interruptSignal(() => say('interrupted: stopping after the requests in flight'));
    try {
      const report = await withMaintenanceContext(config, (ctx) =>
        withRunLock(ctx.redis, ctx.keys, 'reconcile', () =>
          runReconcile({
            state: ctx.state,
            publisher: ctx.publisher,
            bapi: ctx.bapi,
            limiter: ctx.limiter,
            log,
            signal: interrupt.signal,
            dryRun: values['dry-run'],
            lists: !values.targeted,
            maxAgeMs,
            concurrency,
            progress,
          }),
        ),
      );
      console.log(values.json ? JSON.stringify(report) : formatReconcileReport(report));
      return report.status === 'completed' ? 0 : report.status === 'interrupted' ? 130 : 1;
    } finally {
      progress.finish();
      interrupt.dispose();
    }
  },
};
