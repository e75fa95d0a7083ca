import type { Redis } from '../redis/connection.ts';
import { decodeValue, expiryMember, isOrganizationId, rawEntry, type RawEntry, type StoredState } from './codec.ts';
import type { MirrorKeys } from './keys.ts';
import { EpochChangedError, epochCandidate } from './publisher.ts';
import { stateScripts, type StateScripts } from './scripts.ts';

/** Names of the maintenance records kept next to the state (same epoch, same slot). */
export const RECORDS = {
  backfillCursor: 'backfill.cursor',
  backfillLast: 'backfill.last',
  reconcileLast: 'reconcile.last',
} as const;

/** The state's meta hash. */
export interface StateMeta {
  /** Changes whenever Redis lost the state and a new one began. */
  epoch: string;
  /** Sequence number of the newest change (0: none yet). */
  seq: number;
  /** Stream id of the newest change ('0-0': none yet). */
  last: string;
  createdAt: number;
  /** When a complete pass over Clerk's lists was first published into this epoch; until then the state may lack invitations. */
  filledAt: number | undefined;
  /**
   * Sequence number after which every organization of a complete listing (backfill or
   * reconciliation) is in the state: a reader that has applied that far may answer 404 for an
   * organization it does not know. Undefined until such a listing finished in this epoch.
   */
  organizationsListedSeq: number | undefined;
}

function toMeta(flat: string[]): StateMeta | undefined {
  const h: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) h[flat[i]!] = flat[i + 1]!;
  if (!h.epoch) return undefined;
  return {
    epoch: h.epoch,
    seq: Number(h.seq ?? 0),
    last: h.last ?? '0-0',
    createdAt: Number(h.created_at ?? 0),
    filledAt: h.filled_at ? Number(h.filled_at) : undefined,
    organizationsListedSeq: h.organizations_listed ? Number(h.organizations_listed) : undefined,
  };
}

/** What the worker's skip rule needs of one invitation. */
export interface Held {
  stored: { updatedAt: number; deleted: boolean } | undefined;
  announced: number | undefined;
  /** Invitations of its organization webhooks announced within the recent window (itself included). */
  recent: number;
}

/** Whether the shared state holds at least the newest announced version (the skip rule). */
export const holdsAnnounced = (h: Held) => h.stored !== undefined && h.announced !== undefined && h.stored.updatedAt >= h.announced;

/** The states of an HSCAN-style reply: id, value, id, value… */
function decodePairs(flat: string[]): StoredState[] {
  const states: StoredState[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) states.push(decodeValue(flat[i]!, flat[i + 1]!));
  return states;
}

/** Reads of the shared state (snapshot, meta, records, change stream) over one connection. */
export class SharedState {
  private readonly scripts: StateScripts;

  constructor(
    readonly redis: Redis,
    readonly keys: MirrorKeys,
  ) {
    this.scripts = stateScripts(redis);
  }

  /** The meta, starting a new epoch when the state does not exist (what a worker or replica does at start). */
  async ensure(): Promise<StateMeta> {
    return toMeta(await this.scripts.ensure([this.keys.meta], [epochCandidate()]))!;
  }

  /** The meta, or undefined when Redis holds no state. */
  async meta(): Promise<StateMeta | undefined> {
    const flat = (await this.redis.call('HGETALL', this.keys.meta)) as string[];
    return toMeta(flat);
  }

  /** The state of an invitation, or of an organization for an `org_…` id. */
  async get(id: string): Promise<StoredState | undefined> {
    const v = await this.redis.hget(isOrganizationId(id) ? this.keys.organizations : this.keys.snapshot, id);
    return v === null ? undefined : decodeValue(id, v);
  }

  /**
   * The stored version and the newest announced one of each invitation, and how many of its
   * organization were announced since `recentSince` (ms), in one round trip.
   */
  async held(items: readonly { invitationId: string; organizationId: string }[], recentSince = 0): Promise<Held[]> {
    const keys = [this.keys.snapshot, ...items.map((i) => this.keys.announced(i.invitationId)), ...items.map((i) => this.keys.recentlyAnnounced(i.organizationId))];
    const flat = await this.scripts.held(keys, [String(recentSince), ...items.map((i) => i.invitationId)]);
    return items.map((_, i) => {
      const [u, d, a, r] = [flat[4 * i] ?? null, flat[4 * i + 1] ?? null, flat[4 * i + 2] ?? null, flat[4 * i + 3] ?? 0];
      return { stored: u === null ? undefined : { updatedAt: Number(u), deleted: d === '1' }, announced: a === null ? undefined : Number(a), recent: Number(r) };
    });
  }

  /** The invitations of an organization webhooks announced since `since` (ms), oldest first. */
  recentlyAnnounced(organizationId: string, since: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.recentlyAnnounced(organizationId), since, '+inf');
  }

  /**
   * Every invitation's state (or, with `of: 'organizations'`, every organization's), in
   * batches of about `count` (HSCAN: a state present for the whole scan is returned at least
   * once; one changed meanwhile may come in either version, which is why a replica notes the
   * stream position first and replays what follows). The next batch is asked for before this
   * one is handed over, so Redis prepares it meanwhile.
   */
  async *scan(count = 1000, of: 'invitations' | 'organizations' = 'invitations'): AsyncGenerator<StoredState[]> {
    const key = of === 'invitations' ? this.keys.snapshot : this.keys.organizations;
    const page = (cursor: string) => {
      const p = this.redis.hscan(key, cursor, 'COUNT', count);
      p.catch(() => {});
      return p;
    };
    let pending = page('0');
    for (;;) {
      const [next, flat] = await pending;
      if (next !== '0') pending = page(next);
      const batch = decodePairs(flat);
      if (batch.length) yield batch;
      if (next === '0') return;
    }
  }

  /**
   * Takes (removes and returns) up to `limit` pending invitations whose `expires_at` is at or
   * before `at`, as `{ organizationId, invitationId }`; two callers never get the same one.
   */
  async takeDueExpiries(at: number, limit: number): Promise<{ organizationId: string; invitationId: string }[]> {
    const members = await this.scripts.due([this.keys.expiries], [at, limit]);
    return members.flatMap((m) => {
      const slash = m.indexOf('/');
      return slash > 0 ? [{ organizationId: m.slice(0, slash), invitationId: m.slice(slash + 1) }] : [];
    });
  }

  /** Puts invitations back into the expiries set (their re-fetch could not be queued). */
  async scheduleExpiries(items: readonly { organizationId: string; invitationId: string }[], at: number): Promise<void> {
    if (items.length) await this.redis.zadd(this.keys.expiries, ...items.flatMap((i) => [at, expiryMember(i.organizationId, i.invitationId)]));
  }

  /**
   * Live states whose stored value contains `text`, found by Redis page by page (only the
   * matches travel). A match may hold `text` anywhere in its value: check the field you mean.
   */
  async *findContaining(text: string, count = 1000): AsyncGenerator<StoredState[]> {
    let cursor = '0';
    do {
      const [next, flat] = await this.scripts.find([this.keys.snapshot], [cursor, count, text]);
      const batch = decodePairs(flat);
      if (batch.length) yield batch;
      cursor = next;
    } while (cursor !== '0');
  }

  /** Number of invitations in the snapshot (tombstones included). */
  size(): Promise<number> {
    return this.redis.hlen(this.keys.snapshot);
  }

  /** The first stream entry after `streamId`, if any (for how far behind a reader is). */
  async nextEntry(streamId: string): Promise<RawEntry | undefined> {
    const rows = (await this.redis.xrangeBuffer(this.keys.changes, `(${streamId}`, '+', 'COUNT', 1)) as [Buffer, Buffer[]][];
    const row = rows[0];
    return row && rawEntry(row[0].toString('latin1'), row[1]);
  }

  async record<T>(name: string): Promise<T | undefined> {
    const v = await this.redis.hget(this.keys.records, name);
    return v === null ? undefined : (JSON.parse(v) as T);
  }

  /**
   * Writes (or, with undefined, deletes) records and optionally marks the state filled, only
   * if the state is still `epoch`.
   * @throws EpochChangedError otherwise.
   */
  async writeRecords(epoch: string, records: Record<string, unknown>, { filled = false } = {}): Promise<void> {
    const args: string[] = [epoch, filled ? 'filled' : ''];
    for (const [name, value] of Object.entries(records)) args.push(name, value === undefined ? '' : JSON.stringify(value));
    const [status, current] = await this.scripts.records([this.keys.meta, this.keys.records], args);
    if (status !== 'ok') throw new EpochChangedError(current ?? undefined);
  }
}

/**
 * Reads up to `count` stream entries after `streamId` (each holds the changes of one
 * publish), waiting up to `blockMs` for the first one (XREAD BLOCK: use a connection of its
 * own), or not at all when `blockMs` is undefined. Null when none came in time. The changes
 * stay bytes until the replica's writer decodes them (`decodeRecords`).
 */
export async function readChanges(redis: Redis, keys: MirrorKeys, streamId: string, count: number, blockMs: number | undefined): Promise<RawEntry[] | null> {
  const reply = (
    blockMs === undefined
      ? await redis.xreadBuffer('COUNT', count, 'STREAMS', keys.changes, streamId)
      : await redis.xreadBuffer('COUNT', count, 'BLOCK', blockMs, 'STREAMS', keys.changes, streamId)
  ) as [Buffer, [Buffer, Buffer[]][]][] | null;
  const rows = reply?.[0]?.[1];
  if (!rows?.length) return null;
  return rows.map(([id, kv]) => rawEntry(id.toString('latin1'), kv));
}

