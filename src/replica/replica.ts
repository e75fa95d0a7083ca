import { setTimeout as sleep } from 'node:timers/promises';
import { throttledLog, type Logger } from '../logger.ts';
import { streamIdTime } from '../state/codec.ts';
import type { MirrorKeys } from '../state/keys.ts';
import type { Redis } from '../redis/connection.ts';
import { readChanges, SharedState, type StateMeta } from '../state/shared-state.ts';
import { PositionConflictError, ReplicaWriter, type Applied, type ReplicaPosition } from './writer.ts';
import { migrateMirror } from '../mirror/migrate.ts';
import type { FileChange } from '../mirror/file.ts';
import type { MirrorConnection } from '../mirror/open.ts';
import { withTimeout } from '../lifecycle/time-limit.ts';
import type { ReplicaPhase, ReplicaStatus } from './status.ts';
import { ReplicaWriteError, sqliteCode } from './write-error.ts';

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
  /** Called for each failed write with SQLite's primary code (`SQLITE_FULL`, `SQLITE_BUSY`…), for metrics. */
  onWriteFailure?: (code: string) => void;
  /** Called each time the file was opened again because it was deleted or replaced. */
  onReopen?: (change: FileChange) => void;
  /**
   * How often the replica checks, between writes, that the path still names its open file
   * (one `stat`; every write batch checks too).
   * @defaultValue 2000
   */
  fileCheckMs?: number;
  now?: () => number;
}

type FollowEnd = 'gap' | 'epoch' | 'filled';

/** The file was opened again under the loop: start over from the new file's position. */
class FileReopened extends Error {}

/** The file cannot be used now (it was deleted or replaced and cannot be opened again). */
class FileUnusable extends Error {}

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
  private writer: ReplicaWriter;
  private readonly state: SharedState;
  private readonly o: Required<Pick<ReplicaOptions, 'changesPerRead' | 'scanCount' | 'blockMs' | 'metaEveryMs' | 'fileCheckMs' | 'now'>> & ReplicaOptions;
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
  /** Consecutive failures of the loop (Redis or the file), for the pause before the next try. */
  private failures = 0;
  /** Bumped each time the file is opened again: a batch read for the old file must not be written into the new one. */
  private fileGen = 0;
  private fileTimer: NodeJS.Timeout | undefined;
  /** Why the file cannot be used now (deleted or replaced, and opening it again failed). */
  private fileProblem: string | undefined;
  /** What happened to the file, until the replica has caught up in the new one. */
  private fileNote: string | undefined;
  /** The write failure going on (cleared by the next successful write), for the status. */
  private writeFailure: { error: ReplicaWriteError; since: number; count: number } | undefined;
  private writeFailures = 0;
  private reopens = 0;
  private resolveCaughtUp!: () => void;
  /** Resolves the first time the file has caught up with the state. */
  readonly caughtUp: Promise<void>;

  constructor(opts: ReplicaOptions) {
    this.o = { changesPerRead: 2000, scanCount: 10_000, blockMs: 1000, metaEveryMs: 2000, fileCheckMs: 2000, now: Date.now, ...opts };
    this.writer = new ReplicaWriter(opts.conn);
    this.state = new SharedState(opts.redis, opts.keys);
    this.warn = throttledLog(opts.log);
    this.caughtUp = new Promise((r) => (this.resolveCaughtUp = r));
  }

  start(): void {
    if (!this.fileTimer && this.o.fileCheckMs > 0) {
      this.fileTimer = setInterval(() => this.checkFile(), this.o.fileCheckMs);
      this.fileTimer.unref();
    }
    this.loop ??= this.run();
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      try {
        const gen = this.usableFile();
        const meta = (this.meta = await this.contact(this.state.ensure()));
        const pos = (this.pos = this.read(gen, () => this.writer.position()));
        if (pos && pos.epoch === meta.epoch && !(pos.carriesOlderState && meta.filledAt)) {
          const end = await this.follow(pos, gen);
          if (end === 'gap') this.o.log.warn({ offset: pos.streamId }, 'replica missed changes the stream no longer holds: loading the snapshot again');
          if (end !== 'epoch') await this.bootstrap(await this.contact(this.state.ensure()), gen);
        } else {
          await this.bootstrap(meta, gen);
        }
        this.failures = 0;
      } catch (err) {
        if (this.closed) break;
        if (err instanceof FileReopened) continue;
        this.failures++;
        if (err instanceof PositionConflictError) {
          this.phase = 'stale';
          this.reason = err.message;
          this.o.log.error({ path: this.o.conn.path }, err.message);
          return;
        }
        if (err instanceof ReplicaWriteError || err instanceof FileUnusable) {
          // status() reports it while it lasts; the position has not moved, so the next try
          // applies the same changes again. Short pauses: a full disk freed or a lock released
          // should not wait long for the replica.
          if (err instanceof ReplicaWriteError) this.writeFailed(err);
          await sleep(Math.min(2000, 100 * 2 ** Math.min(this.failures, 5))).catch(() => {});
          continue;
        }
        if (this.phase === 'following') {
          this.phase = 'stale';
        }
        this.reason = `cannot follow the shared state: ${(err as Error).message}`;
        this.warn('warn', 'follow', { err: (err as Error).message }, 'replica cannot read or apply the shared state; retrying');
        await sleep(Math.min(5000, 200 * 2 ** Math.min(this.failures, 5))).catch(() => {});
      }
    }
  }

  /** Checks the file (reopening it if needed) and returns its generation. @throws FileUnusable */
  private usableFile(): number {
    this.checkFile({ noteCompanions: false });
    if (this.fileProblem) throw new FileUnusable(this.fileProblem);
    return this.fileGen;
  }

  /** A read of the file between writes (its position): failures count as write failures. */
  private read<T>(gen: number, fn: () => T): T {
    if (gen !== this.fileGen) throw new FileReopened();
    try {
      return fn();
    } catch (err) {
      throw sqliteCode(err) ? new ReplicaWriteError(this.o.conn.path, err) : err;
    }
  }

  /**
   * One write of the file opened as generation `gen`: the path is checked first (a write into
   * a deleted or replaced file would be lost to every other process), and a failure becomes a
   * ReplicaWriteError. Nothing of a failed write is kept, the position included.
   */
  private write<T>(gen: number, fn: () => T): T {
    if (this.usableFile() !== gen) throw new FileReopened();
    const result = this.read(gen, fn);
    if (this.writeFailure) {
      const { count, since } = this.writeFailure;
      this.o.log.info({ path: this.o.conn.path, failures: count, ms: this.o.now() - since }, 'replica writes its file again');
      this.writeFailure = undefined;
    }
    this.failures = 0;
    return result;
  }

  private writeFailed(err: ReplicaWriteError): void {
    this.writeFailures++;
    this.o.onWriteFailure?.(err.code);
    const now = this.o.now();
    this.writeFailure = { error: err, since: this.writeFailure?.since ?? now, count: (this.writeFailure?.count ?? 0) + 1 };
    const level = err.code === 'SQLITE_BUSY' || err.code === 'SQLITE_LOCKED' ? 'warn' : 'error';
    this.warn(
      level,
      `write:${err.code}`,
      { path: this.o.conn.path, code: err.code, err: err.message, failures: this.writeFailure.count, failingForMs: now - this.writeFailure.since, seq: this.pos?.seq ?? null },
      'replica cannot write its file: retrying the batch, its position stays where it was',
    );
  }

  /**
   * Opens the file again when its path names another one: deleted (recreated here, then the
   * snapshot is loaded into it) or replaced, e.g. a backup restored by rename (migrated, then
   * followed from its own position if the stream still holds the changes after it, else
   * loaded from the snapshot). Runs on a timer and before each write; synchronous, so it
   * never runs in the middle of a write.
   */
  private checkFile({ noteCompanions = true } = {}): void {
    if (this.closed) return;
    const conn = this.o.conn;
    let change: FileChange | undefined;
    try {
      change = conn.fileChange({ noteCompanions });
    } catch (err) {
      this.fileProblem = `cannot check ${conn.path}: ${(err as Error).message}`;
      return;
    }
    if (!change) {
      this.fileProblem = undefined;
      return;
    }
    const what = change === 'deleted' ? `${conn.path} was deleted while the replica had it open` : `${conn.path} was replaced while the replica had it open (a backup restored by rename?)`;
    if (!this.fileProblem) this.o.log.error({ path: conn.path, change }, `${what}: opening the path again`);
    try {
      conn.reopen(() => migrateMirror(conn));
    } catch (err) {
      this.fileProblem = `${what}, and it cannot be opened again: ${(err as Error).message}`;
      this.warn('error', 'reopen', { path: conn.path, err: (err as Error).message }, 'replica cannot open its file again; retrying');
      return;
    }
    this.fileProblem = undefined;
    this.fileGen++;
    this.writer = new ReplicaWriter(conn);
    try {
      this.pos = this.writer.position();
    } catch {
      // the loop reads it again, and reports a file it cannot read
      this.pos = undefined;
    }
    this.reopens++;
    this.o.onReopen?.(change);
    this.fileNote = change === 'deleted' ? `${conn.path} was recreated after it was deleted` : `${conn.path} was opened again after it was replaced`;
    // Until the loop has looked at the new file's position, it is not known to be a copy of anything.
    this.phase = 'bootstrapping';
    this.reason = this.fileNote;
    this.o.log.warn(
      { path: conn.path, change, seq: this.pos?.seq ?? null },
      change === 'deleted' ? 'replica recreated its file: loading the snapshot into it' : 'replica opened the new file: following from its position, or loading the snapshot if the stream no longer fits it',
    );
  }

  /**
   * Loads the snapshot into the file. `replace` (the state is filled, or the file holds
   * nothing of another state) also removes rows the state does not hold; otherwise the rows
   * of the older state stay, marked, until the new state is filled.
   */
  private async bootstrap(meta: StateMeta, gen: number): Promise<void> {
    const pos = this.read(gen, () => this.writer.position());
    const foreign = pos === undefined || pos.epoch !== meta.epoch || pos.carriesOlderState;
    const replace = meta.filledAt !== undefined || !foreign || this.read(gen, () => this.writer.rowCount()) === 0;
    if (this.phase !== 'stale') this.phase = 'bootstrapping';
    this.reason = this.fileNote ?? 'loading the snapshot';
    const started = this.o.now();
    const seen = new Set<string>();
    let rows = 0;
    for (const of of ['organizations', 'invitations'] as const) {
      const pages = this.state.scan(this.o.scanCount, of);
      for (let page = await this.contact(pages.next()); !page.done; page = await this.contact(pages.next())) {
        const batch = page.value;
        if (this.closed) return;
        // In key order: SQLite then touches each index page once per batch, not once per row.
        this.write(gen, () => this.writer.apply(batch.sort((a, b) => (a.id < b.id ? -1 : 1))));
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
    const removed = this.write(gen, () => (replace ? this.writer.removeAllBut(seen, to) : (this.writer.apply([], to), 0)));
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
  private async follow(pos: ReplicaPosition, gen: number): Promise<FollowEnd> {
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
      // Opened again while this read waited (the timer's check): go on from the new file's position.
      if (gen !== this.fileGen) throw new FileReopened();
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
        const applied = this.write(gen, () => this.writer.applyEntries(entries, to));
        this.pos = to;
        this.applied += applied.changes;
        this.o.onApplied?.(applied, this.o.now());
      } else {
        next = read();
      }
      if (!entries || entries.length < count) {
        this.fileNote = undefined;
        this.resolveCaughtUp();
      }
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
          this.write(gen, () => this.writer.apply([], to));
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
    // A file that cannot be written (or used) now: not a copy to route reads to, while it lasts.
    const trouble = this.fileProblem ?? (this.writeFailure && this.writeTrouble(this.writeFailure));
    const reason = trouble ?? this.reason;
    return {
      state: trouble && this.phase === 'following' ? 'stale' : this.phase,
      reason: reachable ? reason : `Redis does not answer${reason ? `; ${reason}` : ''}`,
      epoch: pos?.epoch,
      offset: pos?.streamId,
      seq: pos?.seq,
      filled: !!meta?.filledAt && sameEpoch,
      entriesBehind: reachable && sameEpoch ? Math.max(0, meta!.seq - pos!.seq) : undefined,
      secondsBehind,
      applied: this.applied,
      bootstraps: this.bootstraps,
      writeFailures: this.writeFailures,
      reopens: this.reopens,
    };
  }

  private writeTrouble({ error, since, count }: NonNullable<Replica['writeFailure']>): string {
    const s = ((this.o.now() - since) / 1000).toFixed(1);
    return `${error.message}; retrying (${count} failed tries over ${s} s), the file holds the changes up to ${this.pos?.seq ?? 'none'}`;
  }

  /** Stops following; the file keeps what was applied. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.fileTimer);
    for (const stop of this.onClose) stop();
    this.onClose.clear();
    // Ends a pending XREAD BLOCK at once.
    this.o.blocking.disconnect();
    await this.loop?.catch(() => {});
  }
}
