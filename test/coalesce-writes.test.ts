import type { Socket } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterAll, expect, it } from 'vitest';
import { WriteCoalescer } from '../src/redis/coalesce-writes.ts';
import { connectRedis, type Redis } from '../src/redis/connection.ts';
import { redisSpace } from './helpers/state.ts';

const space = redisSpace('coalesce-writes');
const { url } = space;
const open: Redis[] = [];
afterAll(async () => {
  await Promise.all(open.map((c) => c.quit().catch(() => c.disconnect())));
  await space.clear();
});

async function ready(): Promise<Redis> {
  const c = connectRedis(url);
  open.push(c);
  if (c.status !== 'ready') await new Promise((r) => c.once('ready', r));
  return c;
}

/** Counts the socket writes a connection makes (one `_write` or `_writev` per syscall batch). */
function countWrites(c: Redis): { writes: () => number } {
  const s = c.stream as Socket & { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };
  let n = 0;
  const write = s._write.bind(s);
  const writev = s._writev.bind(s);
  s._write = (...a) => {
    n++;
    write(...a);
  };
  s._writev = (...a) => {
    n++;
    writev(...a);
  };
  return { writes: () => n };
}

it('commands issued in one turn after hold() leave in one socket write, and each gets its own reply in order', async () => {
  const c = await ready();
  const coalescer = new WriteCoalescer(c);
  const counted = countWrites(c);
  coalescer.hold();
  coalescer.hold(); // idempotent within the turn
  const replies = Promise.all(Array.from({ length: 20 }, () => c.incr(space.key('coalesced'))));
  expect(counted.writes()).toBe(0);
  expect(await replies).toStrictEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  expect(counted.writes()).toBe(1);

  // Without hold(), ioredis writes each command at once.
  const before = counted.writes();
  await Promise.all([c.incr(space.key('plain')), c.incr(space.key('plain')), c.incr(space.key('plain'))]);
  expect(counted.writes() - before).toBe(3);
});

it('the hold ends with the turn: a later turn is held again, and nothing stays corked', async () => {
  const c = await ready();
  const coalescer = new WriteCoalescer(c);
  coalescer.hold();
  expect(c.stream.writableCorked).toBe(1);
  await nextTurn();
  expect(c.stream.writableCorked).toBe(0);
  coalescer.hold();
  expect(c.stream.writableCorked).toBe(1);
  expect(await c.ping()).toBe('PONG');
  expect(c.stream.writableCorked).toBe(0);
});

it('before the connection is ready hold() does nothing and commands still go through', async () => {
  const c = connectRedis(url);
  open.push(c);
  expect(c.status).not.toBe('ready');
  new WriteCoalescer(c).hold();
  expect(await c.set(space.key('early'), '1')).toBe('OK');
  expect(await c.get(space.key('early'))).toBe('1');
});
