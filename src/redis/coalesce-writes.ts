import type { Redis } from './connection.ts';

/**
 * Lets the commands a process issues in one event-loop turn leave in one socket write.
 * ioredis writes every command to the socket at once, so a receiver paid a write syscall per
 * command, two per webhook, and Redis read each on its own. Holding the socket (cork) until
 * the turn's I/O callbacks have run (setImmediate) sends them together, which costs both Node
 * and Redis less CPU per webhook (`tsx bench/enqueue-cost.ts`; the ingest benchmark in
 * BENCHMARKS.md).
 * Order on the connection is unchanged and every reply still settles its own command's promise.
 */
export class WriteCoalescer {
  private held = false;

  constructor(private readonly redis: Redis) {}

  /** Call before issuing commands; idempotent within a turn. */
  hold(): void {
    if (this.held) return;
    const stream = this.redis.stream;
    // Not connected (or reconnecting): ioredis queues or refuses commands itself.
    if (this.redis.status !== 'ready' || !stream?.writable) return;
    this.held = true;
    stream.cork();
    setImmediate(() => {
      this.held = false;
      // The same socket even if ioredis replaced it meanwhile: a dead one ignores this.
      stream.uncork();
    });
  }
}
