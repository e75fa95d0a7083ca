import { parseArgs } from 'node:util';
import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { interruptSignal, withSyncContext } from '../sync/context.ts';
import { logProgress, ttyProgress } from '../sync/progress.ts';
import { formatReconcileReport, runReconcile } from '../sync/reconcile.ts';
import { withRunLock } from '../sync/run-lock.ts';
import { UsageError, type Command } from './command.ts';

export const reconcileCommand: Command = {
  summary: 'compare the mirror with Clerk and repair the drift (--dry-run only reports)',
  help: `Usage: clerk-invitation-mirror reconcile [--dry-run] [--targeted] [--max-age MS] [--concurrency N] [--db PATH] [--json]

Makes the mirror match Clerk, and reports the drift it found per kind:
  missing   in Clerk, not in the mirror            -> inserted
  outdated  the mirror holds an older state        -> updated
  expired   pending in the mirror, expired in Clerk (Clerk sends no expiry event)
  gone      in the mirror, 404 in Clerk            -> tombstoned
It pages through BAPI's lists (as \`backfill\` does), then re-fetches one by one every
row the lists did not show, pending rows past expires_at and rows Clerk has not
confirmed for longer than --max-age. The service runs the same job every
RECONCILE_INTERVAL_MS; a successful run is recorded for /metrics.

Needs CLERK_SECRET_KEY; uses CLERK_API_URL, REDIS_URL and MIRROR_DB_PATH. BAPI calls
share the worker's rate limit. Exit codes: 0 done, 1 failed, 130 interrupted.

Options:
  --dry-run        report only; nothing is written
  --targeted       skip the lists: only re-fetch pending rows past expires_at and old rows
  --max-age MS     re-fetch rows unconfirmed for this long (default RECONCILE_MAX_AGE_MS)
  --concurrency N  requests in flight at once (default 4)
  --db PATH        SQLite file (default: MIRROR_DB_PATH)
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
        db: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
      strict: true,
    });
    const concurrency = Number(values.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new UsageError('--concurrency must be a whole number from 1 to 64');
    const config = loadConfig(env, { require: ['CLERK_SECRET_KEY'] });
    const maxAgeMs = values['max-age'] === undefined ? config.reconcile.maxAgeMs : Number(values['max-age']);
    if (!Number.isInteger(maxAgeMs) || maxAgeMs < 0) throw new UsageError('--max-age must be a whole number of milliseconds');
    const log = createLogger({ level: config.logLevel === 'info' && process.stderr.isTTY ? 'warn' : config.logLevel, destination: process.stderr });
    const progress = process.stderr.isTTY ? ttyProgress(process.stderr, { label: 'reconcile' }) : logProgress(log, { label: 'reconcile' });
    const interrupt = interruptSignal(() => process.stderr.write('\ninterrupted: stopping after the requests in flight\n'));
    try {
      const report = await withSyncContext(config, values.db ?? config.mirrorDbPath, (ctx) =>
        withRunLock(ctx.redis, 'reconcile', () =>
          runReconcile({
            conn: ctx.conn,
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
      interrupt.dispose();
    }
  },
};
