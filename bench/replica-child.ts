// Child process of replica.lag_ms: one replica on a file of its own, following the shared
// state, recording for every change the time from its publish (the entry's receivedAt, set by
// the publisher to the moment it called Redis) to the commit of the batch that applied it.
// Reads {redisUrl, path} on stdin; prints "ready" once caught up; on stdin "stop" prints the
// lags as JSON and exits.
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { createLogger } from '../src/logger.ts';
import { migrateMirror } from '../src/mirror/migrate.ts';
import { openMirrorDb } from '../src/mirror/open.ts';
import { Replica } from '../src/replica/replica.ts';
import { mirrorKeys } from '../src/state/keys.ts';

const lines = createInterface({ input: process.stdin });
const it = lines[Symbol.asyncIterator]();
const { redisUrl, path } = JSON.parse((await it.next()).value as string) as { redisUrl: string; path: string };
const conn = openMirrorDb({ path });
migrateMirror(conn);
const lags: number[] = [];
const replica = new Replica({
  redis: new Redis(redisUrl, { maxRetriesPerRequest: null }),
  blocking: new Redis(redisUrl, { maxRetriesPerRequest: null }),
  conn,
  keys: mirrorKeys(),
  log: createLogger({ level: 'warn', destination: process.stderr }),
  onApplied: (applied, at) => {
    for (const r of applied.receivedAt) lags.push(at - r);
  },
});
replica.start();
await replica.caughtUp;
process.stdout.write('ready\n');
await it.next();
await replica.close();
process.stdout.write(`${JSON.stringify(lags)}\n`);
process.exit(0);
