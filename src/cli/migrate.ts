import { parseArgs } from 'node:util';
import { loadConfig } from '../config.ts';
import { migrateMirror } from '../mirror/migrate.ts';
import { openMirrorDb } from '../mirror/open.ts';
import type { Command } from './command.ts';

export const migrateCommand: Command = {
  summary: 'create or upgrade the mirror database and exit',
  help: `Usage: clerk-invitation-mirror migrate [--db PATH]

Applies the SQL migrations in migrations/ to the mirror's SQLite file, creating it if needed.
\`start\` does the same before serving; a failed migration stops either with a non-zero exit.

Options:
  --db PATH   SQLite file (default: MIRROR_DB_PATH, else ./data/mirror.db)
  -h, --help  show this help`,
  async run(argv, env) {
    const { values } = parseArgs({ args: argv, options: { db: { type: 'string' } }, strict: true });
    const config = loadConfig(env);
    const path = values.db ?? config.mirrorDbPath;
    const conn = openMirrorDb({ path });
    try {
      const { applied, total } = migrateMirror(conn);
      console.log(`mirror at ${path}: ${applied} migration(s) applied, ${total} in all`);
      return 0;
    } finally {
      conn.close();
    }
  },
};
