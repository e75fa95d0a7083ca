import { setTimeout as sleep } from 'node:timers/promises';
import { throttledLog, type Logger } from '../logger.ts';
import { streamIdTime } from '../state/codec.ts';
import type { MirrorKeys } from '../state/keys.ts';
import type { Redis } from '../redis/connection.ts';
import { readChanges, SharedState, type StateMeta } from '../state/shared-state.ts';
import { PositionConflictError, ReplicaWriter, type Applied, type ReplicaPosition } from './writer.ts';
import type { MirrorConnection } from '../mirror/open.ts';

/**
 * - `bootstrapping`: loading the snapshot; the file is not yet a copy of the state.
 * - `following`: caught up at least once, applying changes as they come.
 * - `stale`: serving what it has, but that is not (or no longer known to be) the shared
 *   state: Redis lost the state and it has not been filled again, or a failure stops it.
 */
export type ReplicaPhase = 'bootstrapping' | 'following' | 'stale';

export interface ReplicaStatus {
  state: ReplicaPhase;
  /** Why it is stale or not ready, in words. */
  reason: string | undefined;
  /** Epoch and position of the file. */
  epoch: string | undefined;
  offset: string | undefined;
  seq: number | undefined;
  /** The shared state has had a complete pass over Clerk's lists (until then it may lack invitations). */
  filled: boolean;
  /** Changes published but not applied here; undefined when unknown (Redis unreachable). */
  entriesBehind: number | undefined;
  /** Age of the oldest change not applied here (0 when caught up), or the time since Redis last answered. */
  secondsBehind: number;
  /** Rows applied and snapshot loads since start. */
  applied: number;
  bootstraps: number;
}

/** @internal */
export interface ReplicaOptions {
  /** For meta and snapshot reads (non-blocking commands). */
  redis: Redis;
  /** Its own connection: XREAD BLOCK waits on it. */
  blocking: Redis;
  /** The file (migrated); lookups in this process read through it. */
  conn: MirrorConnection;
  keys: MirrorKeys;
  log: Logger;
  /**
   * About how many changes one read and one transaction take. Each stream entry holds the
   * changes of one publish (one worker turn, one list page), so the number of entries asked
   * for follows the size of the last ones read.
   * @defaultValue 2000
   */
  changesPerRead?: number;
  /** Snapshot entries per HSCAN call and per transaction while loading. @defaultValue 10000 */
  scanCount?: number;
  /** How long one read waits for new changes before checking the state's meta. @defaultValue 1000 */
  blockMs?: number;
  /** How often the state's meta is checked while changes keep coming. @defaultValue 2000 */
  metaEveryMs?: number;
  /** Called after each applied batch with how many changes it held and when their events were accepted (for lag metrics). */
  onApplied?: (applied: Applied, appliedAt: number) => void;
  now?: () => number;
}

type FollowEnd = 'gap' | 'epoch' | 'filled';

/**
 * Keeps one SQLite file equal to the shared state: loads the snapshot (noting the stream
 * position first), then follows the change stream from that position, each batch one
 * transaction together with the new position. It never calls BAPI. It never empties its file
 * because Redis is empty: after Redis lost the state it keeps serving, reports itself stale,
 * applies the new state's changes, and once that state has been filled removes what the new
 * state does not hold (deletions included).
 * @internal
 */
export class Replica {
  private readonly writer: ReplicaWriter;
  private readonly state: SharedState;
  private readonly o: Required<Pick<ReplicaOptions, 'changesPerRead' | 'scanCount' | 'blockMs' | 'metaEveryMs' | 'now'>> & ReplicaOptions;
  private readonly warn;
  private phase: ReplicaPhase = 'bootstrapping';
  private reason: string | undefined = 'loading the snapshot';
  private meta: StateMeta | undefined;
  /** The file's position as this replica last read or wrote it. */
  private pos: ReplicaPosition | undefined;
  private lastContactAt = 0;
  private closed = false;
  /**
   * Called on close, so a loop waiting for a Redis that does not answer stops at once. One per
   * pending wait, removed when it settles (racing every wait against one long-lived promise
   * would keep each wait's answer alive until the close).
   */
  private readonly onClose = new Set<() => void>();
  private loop: Promise<void> | undefined;
  private applied = 0;
  private bootstraps = 0;
  private resolveCaughtUp!: () => void;
  /** Resolves the first time the file has caught up with the state. */
  readonly caughtUp: Promise<void>;

  constructor(opts: ReplicaOptions) {
    this.o = { changesPerRead: 2000, scanCount: 10_000, blockMs: 1000, metaEveryMs: 2000, now: Date.now, ...opts };
    this.writer = new ReplicaWriter(opts.conn);
    this.state = new SharedState(opts.redis, opts.keys);
    this.warn = throttledLog(opts.log);
    this.caughtUp = new Promise((r) => (this.resolveCaughtUp = r));
  }

  start(): void {
    this.loop ??= this.run();
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      try {
        const meta = (this.meta = await this.contact(this.state.ensure()));
        const pos = (this.pos = this.writer.position());
        if (pos && pos.epoch === meta.epoch && !(pos.carriesOlderState && meta.filledAt)) {
          const end = await this.follow(pos);
          if (end === 'gap') this.o.log.warn({ offset: pos.streamId }, 'replica missed changes the stream no longer holds: loading the snapshot again');
          if (end !== 'epoch') await this.bootstrap(await this.contact(this.state.ensure()));
        } else {
          await this.bootstrap(meta);
        }
        failures = 0;
      } catch (err) {
        if (this.closed) break;
        failures++;
        if (err instanceof PositionConflictError) {
          this.phase = 'stale';
          this.reason = err.message;
          this.o.log.error({ path: this.o.conn.path }, err.message);
          return;
        }
        if (this.phase === 'following') {
          this.phase = 'stale';
        }
        this.reason = `cannot follow the shared state: ${(err as Error).message}`;
        this.warn('warn', 'follow', { err: (err as Error).message }, 'replica cannot read or apply the shared state; retrying');
        await sleep(Math.min(5000, 200 * 2 ** Math.min(failures, 5))).catch(() => {});
      }
    }
  }

  /**
   * Loads the snapshot into the file. `replace` (the state is filled, or the file holds
   * nothing of another state) also removes rows the state does not hold; otherwise the rows
   * of the older state stay, marked, until the new state is filled.
   */
  private async bootstrap(meta: StateMeta): Promise<void> {
    const pos = this.writer.position();
    const foreign = pos === undefined || pos.epoch !== meta.epoch || pos.carriesOlderState;
    const replace = meta.filledAt !== undefined || !foreign || this.writer.rowCount() === 0;
    if (this.phase !== 'stale') this.phase = 'bootstrapping';
    this.reason = 'loading the snapshot';
    const started = this.o.now();
    const seen = new Set<string>();
    let rows = 0;
    for (const of of ['organizations', 'invitations'] as const) {
      const pages = this.state.scan(this.o.scanCount, of);
      for (let page = await this.contact(pages.next()); !page.done; page = await this.contact(pages.next())) {
        const batch = page.value;
        if (this.closed) return;
        // In key order: SQLite then touches each index page once per batch, not once per row.
        this.writer.apply(batch.sort((a, b) => (a.id < b.id ? -1 : 1)));
        for (const s of batch) seen.add(s.id);
        rows += batch.length;
      }
    }
    // A state replaced while we scanned would leave a mix of two: start over instead.
    const after = await this.contact(this.state.meta());
    if (after?.epoch !== meta.epoch) return;
    // The listing's organizations were all published by `meta.seq`, so the scan saw them.
    const organizationsListed = meta.organizationsListedSeq !== undefined;
    const to: ReplicaPosition = { epoch: meta.epoch, streamId: meta.last, seq: meta.seq, carriesOlderState: !replace, organizationsListed };
    const removed = replace ? this.writer.removeAllBut(seen, to) : (this.writer.apply([], to), 0);
    this.pos = to;
    this.bootstraps++;
    this.o.log.info(
      { rows, removed, keptOlderRows: !replace, ms: this.o.now() - started, epoch: meta.epoch, seq: meta.seq },
      replace ? 'replica loaded the snapshot' : 'replica merged a new, not yet filled state: serving its older rows meanwhile (stale)',
    );
  }

  /**
   * Applies changes after `pos` until the stream has a gap, the state is replaced, or a new
   * state got filled. The next read is sent before a batch is applied, so Redis prepares it
   * while SQLite writes.
   */
  private async follow(pos: ReplicaPosition): Promise<FollowEnd> {
    let from = pos.streamId;
    let seq = pos.seq;
    let lastMetaCheck = this.o.now();
    // Changes per entry, as last seen; before any, assume large entries (read one at first).
    let perEntry = this.o.changesPerRead;
    // The first read does not wait: with nothing new the file has caught up at once.
    let blockMs: number | undefined;
    this.phase = pos.carriesOlderState ? 'stale' : 'following';
    this.reason = pos.carriesOlderState ? 'Redis lost the shared state; serving older rows until a backfill fills the new one' : undefined;
    const read = () => {
      const count = Math.max(1, Math.min(1000, Math.round(this.o.changesPerRead / perEntry)));
      const p = this.contact(readChanges(this.o.blocking, this.o.keys, from, count, blockMs));
      blockMs = this.o.blockMs;
      // Settled by the next turn of the loop, or dropped when this one throws or returns.
      p.catch(() => {});
      return { p, count };
    };
    let next = read();
    while (!this.closed) {
      const { p, count } = next;
      const entries = await p;
      if (entries) {
        for (const e of entries) {
          if (e.previous !== from) return 'gap';
          from = e.streamId;
        }
        const last = entries.at(-1)!;
        // Each entry's first change follows the one before it: the count needs no decoding.
        perEntry = Math.max(1, (last.lastSeq - seq) / entries.length);
        seq = last.lastSeq;
        next = read();
        const to = { ...this.pos!, streamId: last.streamId, seq: last.lastSeq, organizationsListed: this.listedBy(seq) };
        const applied = this.writer.applyEntries(entries, to);
        this.pos = to;
        this.applied += applied.changes;
        this.o.onApplied?.(applied, this.o.now());
      } else {
        next = read();
      }
      if (!entries || entries.length < count) this.resolveCaughtUp();
      if (!entries || this.o.now() - lastMetaCheck >= this.o.metaEveryMs) {
        lastMetaCheck = this.o.now();
        const meta = await this.contact(this.state.meta());
        this.meta = meta;
        if (!meta || meta.epoch !== pos.epoch) {
          this.o.log.warn({ was: pos.epoch, now: meta?.epoch ?? null }, 'the shared state in Redis was replaced (lost data?): replica keeps its rows and reports stale');
          this.phase = 'stale';
          return 'epoch';
        }
        if (pos.carriesOlderState && meta.filledAt) return 'filled';
        // A listing that ended without a change of its own moves no entry along: note it here.
        if (this.listedBy(seq) && !this.pos!.organizationsListed) {
          const to = { ...this.pos!, organizationsListed: true };
          this.writer.apply([], to);
          this.pos = to;
        }
        // Changes were published after ours, and the stream holds none: trimmed away while we were down.
        if (!entries && meta.seq > seq && !(await this.contact(this.state.nextEntry(from)))) return 'gap';
      }
    }
    return 'epoch';
  }

  /** Whether the file holds every organization of a complete listing once it has applied up to `seq`. */
  private listedBy(seq: number): boolean {
    if (this.pos?.organizationsListed) return true;
    const listedSeq = this.meta?.epoch === this.pos?.epoch ? this.meta?.organizationsListedSeq : undefined;
    return listedSeq !== undefined && seq >= listedSeq;
  }

  /** Waits for a Redis answer (or the close) and notes that Redis answered (for `secondsBehind` while it does not). */
  private contact<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const stop = () => reject(new Error('replica closed'));
      if (this.closed) return stop();
      this.onClose.add(stop);
      p.then(
        (v) => {
          this.onClose.delete(stop);
          this.lastContactAt = this.o.now();
          resolve(v);
        },
        (err: unknown) => {
          this.onClose.delete(stop);
          reject(err as Error);
        },
      );
    });
  }

  /** Where the replica stands; asks Redis for the state's meta (bounded by `timeoutMs`). */
  async status(timeoutMs = 1000): Promise<ReplicaStatus> {
    const pos = this.pos;
    let meta = this.meta;
    let reachable = true;
    let secondsBehind = 0;
    try {
      meta = await withTimeout(this.state.meta(), timeoutMs);
      this.lastContactAt = this.o.now();
      this.meta = meta;
      if (pos && meta && meta.epoch === pos.epoch && meta.seq > pos.seq) {
        const next = await withTimeout(this.state.nextEntry(pos.streamId), timeoutMs);
        secondsBehind = next ? Math.max(0, (this.o.now() - streamIdTime(next.streamId)) / 1000) : 0;
      }
    } catch {
      reachable = false;
      secondsBehind = this.lastContactAt ? (this.o.now() - this.lastContactAt) / 1000 : Infinity;
    }
    const sameEpoch = !!pos && !!meta && meta.epoch === pos.epoch;
    return {
      state: this.phase,
      reason: reachable ? this.reason : `Redis does not answer${this.reason ? `; ${this.reason}` : ''}`,
      epoch: pos?.epoch,
      offset: pos?.streamId,
      seq: pos?.seq,
      filled: !!meta?.filledAt && sameEpoch,
      entriesBehind: reachable && sameEpoch ? Math.max(0, meta!.seq - pos!.seq) : undefined,
      secondsBehind,
      applied: this.applied,
      bootstraps: this.bootstraps,
    };
  }

  /** Stops following; the file keeps what was applied. */
  async close(): Promise<void> {
    this.closed = true;
    for (const stop of this.onClose) stop();
    this.onClose.clear();
    // Ends a pending XREAD BLOCK at once.
    this.o.blocking.disconnect();
    await this.loop?.catch(() => {});
  }
}

/**
 * Why a replica with this status should not be routed reads, or true.
 * @internal
 */
export function replicaReadiness(s: ReplicaStatus, maxLagSeconds: number): true | string {
  if (s.state === 'bootstrapping') return 'loading the snapshot from the shared state';
  if (s.state === 'stale') return s.reason ?? 'stale';
  if (!s.filled) return 'the shared state has not been filled by a backfill yet';
  if (s.secondsBehind > maxLagSeconds) return `${s.secondsBehind.toFixed(1)} s behind the shared state (${s.entriesBehind ?? 'unknown'} changes)`;
  return true;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), ms))),
  ]);
}
