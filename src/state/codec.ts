import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { InvitationJSON } from '../clerk/types.ts';

export const STATE_SOURCES = ['webhook', 'backfill', 'reconcile'] as const;
export type StateSource = (typeof STATE_SOURCES)[number];

/** The columns a replica indexes, copied out of the JSON once, by the publisher. */
export interface StateFields {
  organizationId: string;
  emailAddress: string | null;
  status: string | null;
  expiresAt: number | null;
  createdAt: number | null;
  source: StateSource;
}

/** One invitation as the shared state holds it (snapshot value and stream entry alike). */
export interface StoredState {
  id: string;
  /** Clerk's `updated_at`; for a tombstone the newest version known before the 404. */
  updatedAt: number;
  /** When Clerk last confirmed this state (ms, the publisher's clock). */
  confirmedAt: number;
  /** BAPI answered 404: lookups miss it. */
  deleted: boolean;
  /** Digest of the content (canonical JSON), so the same state in other bytes is not a change. */
  hash: string;
  fields: StateFields;
  /** BAPI's JSON exactly as received; for a tombstone the last one known, or null. */
  raw: string | null;
}

const fieldsSchema = z.tuple([
  z.string().min(1),
  z.string().nullable(),
  z.string().nullable(),
  z.number().nullable(),
  z.number().nullable(),
  z.enum(STATE_SOURCES),
]);

/** Thrown for a value or stream entry that is not in the state's format. */
export class StateFormatError extends Error {
  override name = 'StateFormatError';
}

/** An organization's state, not an invitation's: the publish script routes by the same prefix (scripts/publish.lua). */
export const isOrganizationId = (id: string) => id.startsWith('org_');

/** An invitation's member of the expiries set (scripts/publish.lua, scripts/due.lua). */
export const expiryMember = (organizationId: string, invitationId: string) => `${organizationId}/${invitationId}`;

/** Digest of an invitation's content, independent of whitespace and escaping in its bytes. */
export function contentHash(invitation: unknown): string {
  return createHash('sha1').update(JSON.stringify(invitation)).digest('base64url').slice(0, 16);
}

export function fieldsOf(inv: InvitationJSON, source: StateSource): StateFields {
  return {
    organizationId: inv.organization_id,
    emailAddress: inv.email_address ?? null,
    status: inv.status ?? null,
    expiresAt: inv.expires_at ?? null,
    createdAt: inv.created_at ?? null,
    source,
  };
}

/** `fields-json\nraw`: the part of a value the publish script stores without reading. */
export function encodeTail(fields: StateFields, raw: string | null): string {
  const f = [fields.organizationId, fields.emailAddress, fields.status, fields.expiresAt, fields.createdAt, fields.source];
  return `${JSON.stringify(f)}\n${raw ?? ''}`;
}

/** Parses `updated_at|confirmed_at|deleted|hash|fields-json\nraw` (see scripts/publish.lua). */
export function decodeValue(id: string, value: string): StoredState {
  const bars: number[] = [];
  for (let at = -1, n = 0; n < 4; n++) {
    at = value.indexOf('|', at + 1);
    if (at < 0) throw new StateFormatError(`state of ${id} has no header`);
    bars.push(at);
  }
  const nl = value.indexOf('\n', bars[3]!);
  if (nl < 0) throw new StateFormatError(`state of ${id} has no fields`);
  const [b0, b1, b2, b3] = bars as [number, number, number, number];
  const updatedAt = Number(value.slice(0, b0));
  const confirmedAt = Number(value.slice(b0 + 1, b1));
  const deleted = value.slice(b1 + 1, b2);
  if (!Number.isSafeInteger(updatedAt) || !Number.isSafeInteger(confirmedAt) || (deleted !== '0' && deleted !== '1')) {
    throw new StateFormatError(`state of ${id} has a malformed header`);
  }
  const parsed = fieldsSchema.safeParse(safeJson(value.slice(b3 + 1, nl)));
  if (!parsed.success) throw new StateFormatError(`state of ${id} has malformed fields`);
  const [organizationId, emailAddress, status, expiresAt, createdAt, source] = parsed.data;
  const raw = value.slice(nl + 1);
  return {
    id,
    updatedAt,
    confirmedAt,
    deleted: deleted === '1',
    hash: value.slice(b2 + 1, b3),
    fields: { organizationId, emailAddress, status, expiresAt, createdAt, source },
    raw: raw === '' ? null : raw,
  };
}

/** The header and fields alone (`…|fields-json`), as the publish script returns previous states. */
export function decodeHeader(id: string, header: string): Omit<StoredState, 'raw'> {
  const { raw: _raw, ...rest } = decodeValue(id, `${header}\n`);
  return rest;
}

/** `JSON.parse`, or undefined for text that is not JSON. */
export function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** One change of the change stream. */
export interface Change {
  /** Sequence number of the change within its epoch (1, 2, …). */
  seq: number;
  /** When the receiver accepted the event behind it (ms), if a webhook caused it. */
  receivedAt: number | undefined;
  state: StoredState;
}

/** One entry of the change stream: the changes of one publish, in order. */
export interface ChangeEntry {
  /** Stream id, e.g. `1764000000000-0`. */
  streamId: string;
  /** Stream id of the entry before it: a reader whose offset is not this one missed entries. */
  previous: string;
  /** Sequence number of its last change. */
  lastSeq: number;
  changes: Change[];
}

/** Separates the parts of a stream entry; valid JSON holds it only escaped (scripts/publish.lua). */
const RS = 0x1e;

/**
 * A stream entry as read, its changes not decoded yet: `body` is the `e` field's bytes,
 * `previous␞lastSeq␞id|received_at|value␞…` (scripts/publish.lua), and `recordsAt` the
 * offset of its first record. The records are decoded where they are written, so a read
 * passes bytes along without turning every record into strings first.
 */
export interface RawEntry {
  streamId: string;
  /** Stream id of the entry before it: a reader whose offset is not this one missed entries. */
  previous: string;
  /** Sequence number of its last change. */
  lastSeq: number;
  body: Buffer;
  recordsAt: number;
}

/** Reads the header of an XREAD/XRANGE entry (`[id, ['e', body]]`) whose field values came as bytes. */
export function rawEntry(streamId: string, kv: (Buffer | string)[]): RawEntry {
  const field = kv[0]?.toString();
  const body = kv[1];
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const a = field === 'e' && bytes ? bytes.indexOf(RS) : -1;
  const b = a < 0 ? -1 : bytes!.indexOf(RS, a + 1);
  const lastSeq = b < 0 ? NaN : Number(bytes!.toString('latin1', a + 1, b));
  if (b < 0 || !Number.isSafeInteger(lastSeq)) throw new StateFormatError(`change ${streamId} is not a mirror state entry`);
  return { streamId, previous: bytes!.toString('latin1', 0, a), lastSeq, body: bytes!, recordsAt: b + 1 };
}

/** The changes of an entry, in order. */
export function decodeRecords(streamId: string, lastSeq: number, buf: Buffer, recordsAt: number): Change[] {
  const ends: number[] = [];
  for (let at = buf.indexOf(RS, recordsAt); at >= 0; at = buf.indexOf(RS, at + 1)) ends.push(at);
  ends.push(buf.length);
  const first = lastSeq - ends.length;
  let start = recordsAt;
  return ends.map((end, i): Change => {
    const record = buf.toString('utf8', start, end);
    start = end + 1;
    const a = record.indexOf('|');
    const b = a < 0 ? -1 : record.indexOf('|', a + 1);
    if (a <= 0 || b < 0) throw new StateFormatError(`change ${streamId} holds a malformed record`);
    const received = record.slice(a + 1, b);
    return { seq: first + i + 1, receivedAt: received === '' ? undefined : Number(received), state: decodeValue(record.slice(0, a), record.slice(b + 1)) };
  });
}

/** A raw XREAD/XRANGE entry with its changes decoded. */
export function decodeEntry(streamId: string, kv: (Buffer | string)[]): ChangeEntry {
  const raw = rawEntry(streamId, kv);
  return { streamId, previous: raw.previous, lastSeq: raw.lastSeq, changes: decodeRecords(streamId, raw.lastSeq, raw.body, raw.recordsAt) };
}

/** The time part of a stream id (ms since the epoch, Redis' clock). */
export function streamIdTime(streamId: string): number {
  return Number(streamId.slice(0, streamId.indexOf('-')));
}

/** The state a publish of `invitation` would store (for seeding files and measuring without Redis). */
export function storedStateOf(
  invitation: InvitationJSON,
  { raw = JSON.stringify(invitation), observedAt = Date.now(), source = 'backfill', deleted = false }: { raw?: string; observedAt?: number; source?: StateSource; deleted?: boolean } = {},
): StoredState {
  return { id: invitation.id, updatedAt: invitation.updated_at, confirmedAt: observedAt, deleted, hash: contentHash(invitation), fields: fieldsOf(invitation, source), raw };
}
