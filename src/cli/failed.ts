import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { loadConfig } from '../config.ts';
import { SYNC_QUEUE } from '../queue/names.ts';
import { mirrorKeys } from '../state/keys.ts';
import { scrub } from '../logger.ts';
import { connectRedis } from '../redis/connection.ts';
import { withServiceRedis } from '../redis/resolve.ts';
import { UsageError, type Command } from './command.ts';

export const failedCommand: Command = {
  summary: 'list or retry sync jobs that exhausted their attempts',
  help: `Usage: clerk-invitation-mirror failed list [--limit N] [--json]
       clerk-invitation-mirror failed retry (--all | JOB_ID...)

Jobs that failed for good (attempts exhausted, or refused as unrecoverable such as a
wrong CLERK_SECRET_KEY) stay in BullMQ's failed set. \`list\` shows them, newest first;
\`retry\` puts them back in the queue, where a running worker picks them up.

Uses REDIS_URL; when unset, the private redis-server of the service (started next to
MIRROR_DB_PATH), whether the service is running or not.

Options:
  --limit N   how many to list (default 50)
  --json      one JSON object per line instead of the table (JOB, KIND,
              INVITATION/KEY, ATTEMPTS, FAILED AT, REASON)
  --all       retry every failed job
  -h, --help  show this help`,
  async run(argv, env) {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { limit: { type: 'string', default: '50' }, json: { type: 'boolean', default: false }, all: { type: 'boolean', default: false } },
      allowPositionals: true,
      strict: true,
    });
    const [action, ...ids] = positionals;
    if (action !== 'list' && action !== 'retry') throw new UsageError('expected `list` or `retry`');
    const limit = Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive whole number');
    if (action === 'retry' && !values.all && ids.length === 0) throw new UsageError('retry needs --all or at least one job id');
    const config = loadConfig(env);

    return withServiceRedis(config, async (url) => {
      const connection = connectRedis(url);
      const queue = new Queue(SYNC_QUEUE, { connection, prefix: mirrorKeys(config.keyPrefix).queuePrefix });
      try {
        return action === 'list' ? await list(queue, limit, values.json) : await retry(queue, values.all ? 'all' : ids);
      } finally {
        await queue.close();
        await connection.quit().catch(() => connection.disconnect());
      }
    });
  },
};

async function list(queue: Queue, limit: number, json: boolean): Promise<number> {
  // Piped into `head`: a reader that has read enough is no error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const total = await queue.getJobCountByTypes('failed');
  const jobs = await queue.getFailed(0, limit - 1);
  if (json) {
    for (const j of jobs) {
      console.log(JSON.stringify({ id: j.id, data: j.data, attemptsMade: j.attemptsMade, failedReason: j.failedReason === undefined ? undefined : scrub(j.failedReason), finishedOn: j.finishedOn }));
    }
    return 0;
  }
  console.log(`${total} failed job(s)${total > jobs.length ? `, showing ${jobs.length}` : ''}`);
  if (jobs.length === 0) return 0;
  const table = failedTable(jobs.map((j) => ({ id: j.id, data: j.data as FailedJobData | undefined, attemptsMade: j.attemptsMade, finishedOn: j.finishedOn, failedReason: j.failedReason })));
  // On a terminal the reason (and only it) is cut to the width, keeping 20 of its characters at
  // least: a narrower terminal wraps whole rows instead. Piped, rows are whole.
  const width = process.stdout.isTTY ? process.stdout.columns : undefined;
  const reasonAt = table[0]!.indexOf('REASON');
  for (const line of table) console.log(width && line.length > width && width - reasonAt > 20 ? `${line.slice(0, width - 1)}…` : line);
  return 0;
}

/** What a failed sync job's data may hold (queue/job.ts); older or foreign jobs may lack any of it. */
interface FailedJobData {
  kind?: string;
  organizationId?: string;
  invitationId?: string;
  field?: string;
  value?: string;
}

export const FAILED_COLUMNS = ['JOB', 'KIND', 'INVITATION/KEY', 'ATTEMPTS', 'FAILED AT', 'REASON'] as const;

/** What a job is about: `org/orginv` for an invitation, `org/*` for a batch, the organization, the role or user of a derived re-fetch. */
function subject(d: FailedJobData | undefined): string {
  if (!d) return '-';
  if (d.kind === 'derived') return `${d.field ?? '?'} ${d.value ?? '?'}`;
  if (d.kind === 'organization') return d.organizationId ?? '-';
  if (d.kind === 'batch') return `${d.organizationId ?? '?'}/*`;
  return `${d.organizationId ?? '?'}/${d.invitationId ?? '*'}`;
}

/**
 * The table `failed list` prints: a header row and one row per job, columns padded to their
 * widest cell (the last, REASON, left as is: its first line, scrubbed of secrets and e-mail
 * addresses).
 */
export function failedTable(jobs: { id?: string; data?: FailedJobData; attemptsMade: number; finishedOn?: number; failedReason?: string }[]): string[] {
  const rows = jobs.map((j) => [
    j.id ?? '-',
    j.data?.kind ?? 'invitation',
    subject(j.data),
    String(j.attemptsMade),
    j.finishedOn ? `${new Date(j.finishedOn).toISOString().slice(0, 19)}Z` : '-',
    scrub((j.failedReason ?? '').split('\n')[0] ?? '') || '-',
  ]);
  const all = [[...FAILED_COLUMNS], ...rows];
  const widths = FAILED_COLUMNS.map((_, c) => Math.max(...all.map((r) => r[c]!.length)));
  return all.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  '));
}

async function retry(queue: Queue, which: 'all' | string[]): Promise<number> {
  const jobs = which === 'all' ? await queue.getFailed(0, -1) : await Promise.all(which.map((id) => queue.getJob(id)));
  let retried = 0;
  let missing = 0;
  for (const [i, job] of jobs.entries()) {
    if (!job || !(await job.isFailed())) {
      console.error(`job ${which === 'all' ? job?.id : which[i]} is not in the failed set`);
      missing++;
      continue;
    }
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    retried++;
  }
  console.log(`${retried} job(s) re-queued`);
  return missing ? 1 : 0;
}
