import { parseArgs } from 'node:util';
import { loadConfig } from '../config.ts';
import { isMigrated } from '../mirror/migrate.ts';
import { openMirrorDb } from '../mirror/open.ts';
import { connectRedis } from '../redis/connection.ts';
import { withServiceRedis } from '../redis/resolve.ts';
import { ReplicaWriter } from '../replica/writer.ts';
import { isEqualReport, verifyReplica, type VerifyReport } from '../replica/verify.ts';
import { mirrorKeys } from '../state/keys.ts';
import { SharedState } from '../state/shared-state.ts';
import { UsageError, type Command } from './command.ts';

export const verifyCommand: Command = {
  summary: "compare a replica's SQLite file with the shared state and list every difference",
  help: `Usage: clerk-invitation-mirror verify [--db PATH] [--recheck-ms N] [--json]

Reads every invitation of the shared state in Redis and every row of a replica's file, and
lists the invitations that are missing from the file, that the file has and the state does
not, and that differ (version, presence or JSON). Changes still flowing can show up as
differences the replica is about to apply: each difference is looked at once more after
--recheck-ms, and only those that remain are reported. The file is opened read-only, so
it can run next to the replica that keeps it.

Exit codes: 0 equal, 1 differences found.
Uses REDIS_URL (unset: the private redis-server of the service at MIRROR_DB_PATH),
REDIS_KEY_PREFIX and MIRROR_DB_PATH.

Options:
  --db PATH        the replica's file (default: MIRROR_DB_PATH)
  --recheck-ms N   pause before looking at differences again (default 2000; 0: no recheck)
  --json           print the report as JSON
  -h, --help       show this help`,
  async run(argv, env) {
    const { values } = parseArgs({
      args: argv,
      options: { db: { type: 'string' }, 'recheck-ms': { type: 'string', default: '2000' }, json: { type: 'boolean', default: false } },
      strict: true,
    });
    const recheckAfterMs = Number(values['recheck-ms']);
    if (!Number.isInteger(recheckAfterMs) || recheckAfterMs < 0) throw new UsageError('--recheck-ms must be a whole number of milliseconds');
    const config = loadConfig(env);
    const path = values.db ?? config.mirrorDbPath;
    // Its errors name the file and what to do.
    const conn = openMirrorDb({ path, readonly: true, watchMs: 0 });
    try {
      if (!isMigrated(conn)) throw new Error(`${path} is not a migrated mirror file (start a replica on it, or run \`clerk-invitation-mirror migrate\`)`);
      const report = await withServiceRedis(config, async (url) => {
        const redis = connectRedis(url);
        redis.on('error', () => {});
        try {
          return await verifyReplica(conn, new SharedState(redis, mirrorKeys(config.keyPrefix)), { recheckAfterMs });
        } finally {
          await redis.quit().catch(() => redis.disconnect());
        }
      });
      const position = new ReplicaWriter(conn).position();
      console.log(values.json ? JSON.stringify({ path, position, ...report }) : format(path, report, position?.seq));
      return isEqualReport(report) ? 0 : 1;
    } finally {
      conn.close();
    }
  },
};

function format(path: string, r: VerifyReport, seq: number | undefined): string {
  const lines = [
    `${path}${seq === undefined ? ' (never followed the shared state)' : ` at change ${seq}`}: ${r.fileRows} row(s); the shared state holds ${r.stateSize} invitation(s)`,
  ];
  const list = (what: string, ids: string[]) => {
    lines.push(`  ${what.padEnd(10)} ${ids.length}`);
    for (const id of ids.slice(0, 20)) lines.push(`    ${id}`);
    if (ids.length > 20) lines.push(`    … and ${ids.length - 20} more (--json lists all)`);
  };
  list('missing', r.missing);
  list('extra', r.extra);
  list('different', r.different);
  lines.push(isEqualReport(r) ? 'equal: the file holds exactly the shared state' : 'DIFFERENT: see above');
  return lines.join('\n');
}
